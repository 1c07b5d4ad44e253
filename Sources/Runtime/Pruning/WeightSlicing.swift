import Foundation

/// Cutting a weight down to some of its rows or columns, in its own dtype (bytes copied, never
/// converted, so a pruned bf16 model holds exactly the original's bf16 values).
extension Weight {
    /// A new owned weight of the rows in `blocks` (each a contiguous range, e.g. one head's D
    /// rows), in the order given.
    public func keepingRows(_ blocks: [Range<Int>]) -> Weight {
        let rowBytes = cols * dtype.byteSize
        let result = Weight(rows: blocks.reduce(0) { $0 + $1.count }, cols: cols, dtype: dtype)
        var target = result.storage
        for block in blocks {
            precondition(block.lowerBound >= 0 && block.upperBound <= rows, "rows \(block) outside 0..<\(rows)")
            target.copyMemory(from: storage + block.lowerBound * rowBytes, byteCount: block.count * rowBytes)
            target += block.count * rowBytes
        }
        return result
    }

    /// A new owned weight of the columns in `blocks`, in the order given.
    public func keepingColumns(_ blocks: [Range<Int>]) -> Weight {
        let size = dtype.byteSize
        let keptCols = blocks.reduce(0) { $0 + $1.count }
        for block in blocks { precondition(block.lowerBound >= 0 && block.upperBound <= cols, "columns \(block) outside 0..<\(cols)") }
        let result = Weight(rows: rows, cols: keptCols, dtype: dtype)
        for row in 0..<rows {
            let source = storage + row * cols * size
            var target = result.storage + row * keptCols * size
            for block in blocks {
                target.copyMemory(from: source + block.lowerBound * size, byteCount: block.count * size)
                target += block.count * size
            }
        }
        return result
    }
}

/// Sorted indices as the fewest contiguous ranges (whole heads, runs of neurons), so slicing
/// copies blocks instead of single elements.
func contiguousRanges(_ indices: [Int], width: Int = 1) -> [Range<Int>] {
    var ranges: [Range<Int>] = []
    for index in indices {
        let range = (index * width)..<(index * width + width)
        if let last = ranges.last, last.upperBound == range.lowerBound {
            ranges[ranges.count - 1] = last.lowerBound..<range.upperBound
        } else {
            ranges.append(range)
        }
    }
    return ranges
}
