import CKernels

/// The causal softmax of attention score rows, optionally within a sliding window: the row of
/// the query at position p sees keys j with p − W < j ≤ p (transformers' sliding_window mask: at
/// most W keys, itself included); keys before the window get probability exactly 0, as those
/// after p do. Rows are `width` apart; row r is the query at position `firstPosition + r`, and
/// column j is key j (positions from 0).
enum WindowedSoftmax {
    static func rows(_ scores: UnsafeMutablePointer<Float>, width: Int, rows: Range<Int>, firstPosition: Int, window: Int?) {
        guard let window else {
            lk_softmax_causal(scores, width, rows.lowerBound, rows.upperBound, firstPosition + 1)
            return
        }
        for r in rows {
            let row = scores + r * width, position = firstPosition + r
            let first = max(0, position - window + 1)
            row.update(repeating: 0, count: first)
            lk_softmax_causal(row + first, width - first, 0, 1, position + 1 - first)
        }
    }

    /// The first key a query at `position` sees.
    static func firstKey(position: Int, window: Int?) -> Int {
        window.map { max(0, position - $0 + 1) } ?? 0
    }
}
