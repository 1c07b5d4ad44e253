/// Token embeddings: out[t] = scale · table[ids[t]], and the backward, gradient[ids[t]] +=
/// scale · dOut[t]. `scale` is 1 but for Gemma (√hidden, applied to the lookup only: a tied head
/// reads the table unscaled). Shapes: table, gradient (V, C); out, dOut (T, C).
enum Embedding {
    static func forward(_ ids: UnsafeBufferPointer<Int>, table: Weight, out: UnsafeMutablePointer<Float>, hidden c: Int, scale: Float? = nil) {
        for (t, id) in ids.enumerated() {
            // A non-fp32 row is widened into its destination; an fp32 row is read in place.
            let row = table.rows(id..<(id + 1), scratch: out + t * c)
            if row != UnsafePointer(out + t * c) { (out + t * c).update(from: row, count: c) }
            if let scale { for i in 0..<c { out[t * c + i] *= scale } }
        }
    }

    static func backward(_ ids: UnsafeBufferPointer<Int>, dOut: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, hidden c: Int,
                         scale: Float? = nil) {
        // Split by columns: a token repeated in the batch adds into its row in the same order on any thread count.
        Parallel.ranges(c, costPerItem: ids.count) { columns in
            for (t, id) in ids.enumerated() {
                let row = gradient + id * c, g = dOut + t * c
                if let scale { for i in columns { row[i] += scale * g[i] } } else { for i in columns { row[i] += g[i] } }
            }
        }
    }
}
