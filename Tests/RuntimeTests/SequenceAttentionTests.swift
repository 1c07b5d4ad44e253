import MemoryPlanner
import XCTest
@testable import Runtime

/// Training attention against a plain double-precision reference, on sequences longer than one
/// row block (so the blocked, causal-only products are checked where blocks meet), with GQA.
final class SequenceAttentionTests: XCTestCase {
    func testForwardAndBackwardMatchAPlainReference() throws {
        let shape = SequenceAttention.Shape(rows: 2, seqLen: 150, heads: 4, kvHeads: 2, headDim: 8)
        let (b, s, h, kv, d) = (shape.rows, shape.seqLen, shape.heads, shape.kvHeads, shape.headDim)
        var random = Xoshiro256StarStar(seed: 11)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(random.next() % 2001) / 1000 - 1) } }
        let q = values(b * s * h * d), k = values(b * s * kv * d), v = values(b * s * kv * d), dOut = values(b * s * h * d)
        let perHead = try XCTUnwrap(try? TrainingBuffers.probsFloats(seqLen: s).value)
        XCTAssertEqual(perHead, SequenceAttention.headFloats(s))
        XCTAssertEqual(perHead, 64 * 64 + 64 * 128 + 22 * 150, "three causal blocks of 64, 64 and 22 rows")
        var probs = [Float](repeating: .nan, count: b * h * perHead), out = [Float](repeating: .nan, count: b * s * h * d)
        SequenceAttention.forward(q: q, k: k, v: v, probs: &probs, out: &out, shape: shape)
        var dq = [Float](repeating: .nan, count: q.count), dk = [Float](repeating: .nan, count: k.count)
        var dv = [Float](repeating: .nan, count: v.count), dScores = [Float](repeating: .nan, count: s * s)
        SequenceAttention.backward(dOut: dOut, q: q, k: k, v: v, probs: probs, dq: &dq, dk: &dk, dv: &dv, dScores: &dScores, shape: shape)

        // The reference, in Double, head by head.
        var rOut = [Double](repeating: 0, count: out.count), rdq = [Double](repeating: 0, count: q.count)
        var rdk = [Double](repeating: 0, count: k.count), rdv = [Double](repeating: 0, count: v.count)
        let scale = 1 / Double(d).squareRoot()
        for bi in 0..<b {
            for head in 0..<h {
                let g = head / (h / kv)
                func qi(_ t: Int, _ j: Int) -> Int { (bi * s + t) * h * d + head * d + j }
                func ki(_ t: Int, _ j: Int) -> Int { (bi * s + t) * kv * d + g * d + j }
                for t in 0..<s {
                    let scores = (0...t).map { u in scale * (0..<d).reduce(0.0) { $0 + Double(q[qi(t, $1)]) * Double(k[ki(u, $1)]) } }
                    let m = scores.max()!, e = scores.map { exp($0 - m) }, z = e.reduce(0, +), p = e.map { $0 / z }
                    // Row t lives in the block of rows [r0, r0 + 64), stored as rows of `visible` keys.
                    let r0 = t / 64 * 64, visible = min(s, r0 + 64)
                    let row = (bi * h + head) * perHead + (r0 == 0 ? 0 : r0 == 64 ? 64 * 64 : 64 * 64 + 64 * 128) + (t - r0) * visible
                    for u in 0..<visible {
                        XCTAssertEqual(Double(probs[row + u]), u <= t ? p[u] : 0, accuracy: 1e-5)
                    }
                    for j in 0..<d { rOut[qi(t, j)] = (0...t).reduce(0.0) { $0 + p[$1] * Double(v[ki($1, j)]) } }
                    // dP = dO·Vᵀ; dS = P⊙(dP − Σ P⊙dP); dQ = scale·dS·K; dK += scale·dSᵀ·Q; dV += Pᵀ·dO.
                    let dP = (0...t).map { u in (0..<d).reduce(0.0) { $0 + Double(dOut[qi(t, $1)]) * Double(v[ki(u, $1)]) } }
                    let dot = zip(p, dP).reduce(0.0) { $0 + $1.0 * $1.1 }
                    let dS = (0...t).map { p[$0] * (dP[$0] - dot) }
                    for u in 0...t {
                        for j in 0..<d {
                            rdq[qi(t, j)] += scale * dS[u] * Double(k[ki(u, j)])
                            rdk[ki(u, j)] += scale * dS[u] * Double(q[qi(t, j)])
                            rdv[ki(u, j)] += p[u] * Double(dOut[qi(t, j)])
                        }
                    }
                }
            }
        }
        func check(_ name: String, _ got: [Float], _ want: [Double]) {
            let worst = zip(got, want).map { abs(Double($0) - $1) }.max()!
            XCTAssertLessThan(worst, 1e-4, "\(name): worst |d| = \(worst)")
        }
        check("out", out, rOut)
        check("dq", dq, rdq)
        check("dk", dk, rdk)
        check("dv", dv, rdv)
    }
}
