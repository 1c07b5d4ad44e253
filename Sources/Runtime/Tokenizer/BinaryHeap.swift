/// An order for a `BinaryHeap`: `a.precedes(b)` when a must come out first.
protocol HeapOrdered {
    func precedes(_ other: Self) -> Bool
}

/// A binary heap over an array: `pop` returns the element that precedes every other. The BPE
/// merge loop (lowest rank first) and the BPE trainer (highest pair count first) both use it.
struct BinaryHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ item: Element) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var best = parent
                if left < items.count && items[left].precedes(items[best]) { best = left }
                if right < items.count && items[right].precedes(items[best]) { best = right }
                if best == parent { break }
                items.swapAt(parent, best)
                parent = best
            }
        }
        return first
    }
}
