/// A block's normed output added into the residual stream: stream += x. Its backward is the
/// identity (the stream's gradient is the block output's), so it has none of its own.
enum Residual {
    static func add(_ x: UnsafePointer<Float>, into stream: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.ranges(count, costPerItem: 1) { range in
            for i in range { stream[i] += x[i] }
        }
    }
}
