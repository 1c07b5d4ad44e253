/// Token embeddings: out[t] = table[ids[t]], and the backward, gradient[ids[t]] += dOut[t].
/// Shapes: table, gradient (V, C); out, dOut (T, C).
enum Embedding {
    static func forward(_ ids: UnsafeBufferPointer<Int>, table: Weight, out: UnsafeMutablePointer<Float>, hidden c: Int) {
        for (t, id) in ids.enumerated() {
            // A non-fp32 row is widened into its destination; an fp32 row is read in place.
            let row = table.rows(id..<(id + 1), scratch: out + t * c)
            if row != UnsafePointer(out + t * c) { (out + t * c).update(from: row, count: c) }
        }
    }

    static func backward(_ ids: UnsafeBufferPointer<Int>, dOut: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, hidden c: Int) {
        for (t, id) in ids.enumerated() {
            let row = gradient + id * c, g = dOut + t * c
            for i in 0..<c { row[i] += g[i] }
        }
    }
}
