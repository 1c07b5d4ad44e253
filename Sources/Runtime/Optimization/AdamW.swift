import Foundation

/// torch.optim.AdamW, reproduced operation for operation so a run here and a run under
/// transformers' Trainer take the same steps. Per step t (from 1), for every element:
///
///     p ← p·(1 − lr·wd)                       decoupled decay, skipped when wd is 0 (norms, biases)
///     m ← lerp(m, g, 1 − β1)                  torch's lerp_: fma((g − m), 1 − β1, m)
///     v ← v·β2 + ((1 − β2)·g)·g               torch's mul_ then addcmul_ (the last product fused)
///     denom ← sqrt(v) / sqrt(1 − β2ᵗ) + eps
///     p ← p + (−lr/(1 − β1ᵗ)·m) / denom        torch's addcdiv_
///
/// The scalars (1 − lr·wd, lr/(1 − β1ᵗ), (1 − β2ᵗ)^0.5, …) are computed in Double as Python
/// computes them and rounded to Float where torch's kernels take them; the element arithmetic is
/// fp32 with the same roundings and the same fused multiply-adds as torch's CPU kernels
/// (single-tensor path, which torch uses for CPU tensors). The one difference: torch's CPU sqrt
/// goes through MKL's vector math, which is not correctly rounded (up to 0.75 ulp); this sqrt is
/// IEEE. So the moments are bit-exact against torch, the parameters bit-exact against torch's
/// arithmetic with an IEEE sqrt, and against torch.optim.AdamW itself 95.6 % (the golden step) to
/// 99.9 % of parameter values are bit-identical, the rest within 2 ulps of the step's scale (the
/// largest of |p| before, after, and the update)
/// (Tests/RuntimeTests/OptimizationAdamWTests.swift; scripts/make-optimizer-fixtures.py).
///
/// The optimizer owns its moment buffers (fp32, one allocation: `stateByteCount`), reads the
/// gradients and updates the parameters in place. Every tensor shares one step count, as they do
/// in a training run where every trainable tensor gets a gradient each step.
///
/// ```swift
/// let optimizer = AdamW(tensors: gradients.entries.map {
///     AdamW.Tensor(name: $0.name, values: $0.parameter, gradients: $0.gradient, count: $0.count, decays: $0.decays)
/// }, settings: AdamW.Settings(lr: 1e-4))
/// optimizer.step(lr: schedule.lr(base: 1e-4, step: optimizer.stepCount))
/// let saved = optimizer.state          // … later, in a fresh optimizer over the same tensors:
/// try resumed.restore(saved)
/// ```
public final class AdamW: @unchecked Sendable {
    /// Hyperparameters, torch's defaults.
    public struct Settings: Equatable, Sendable {
        public var lr: Double
        public var beta1: Double
        public var beta2: Double
        public var eps: Double
        /// Applied to tensors whose `decays` is true; the others get none.
        public var weightDecay: Double
        public var amsgrad: Bool
        public var maximize: Bool

        public init(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                    weightDecay: Double = 0.01, amsgrad: Bool = false, maximize: Bool = false) {
            self.lr = lr
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.weightDecay = weightDecay
            self.amsgrad = amsgrad
            self.maximize = maximize
        }
    }

    /// One trainable tensor: fp32 values updated in place, its gradient (read only) and whether
    /// weight decay applies (transformers' Trainer exempts biases and norm weights).
    public struct Tensor {
        public let name: String
        public let values: UnsafeMutablePointer<Float>
        public let gradients: UnsafePointer<Float>
        public let count: Int
        public let decays: Bool

        public init(name: String, values: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, decays: Bool) {
            self.name = name
            self.values = values
            self.gradients = gradients
            self.count = count
            self.decays = decays
        }
    }

    /// Everything the optimizer carries from step to step, as torch's state_dict has it: the step
    /// count and each tensor's moments. Restoring it makes the next step bit-identical.
    public struct State: Equatable, Sendable {
        public struct Moments: Equatable, Sendable {
            public var name: String
            /// torch's `exp_avg`, `exp_avg_sq` and, with amsgrad, `max_exp_avg_sq`.
            public var expAvg: [Float]
            public var expAvgSq: [Float]
            public var maxExpAvgSq: [Float]?

            public init(name: String, expAvg: [Float], expAvgSq: [Float], maxExpAvgSq: [Float]? = nil) {
                self.name = name
                self.expAvg = expAvg
                self.expAvgSq = expAvgSq
                self.maxExpAvgSq = maxExpAvgSq
            }
        }
        /// Steps taken so far (torch's `state["step"]`).
        public var step: Int
        public var moments: [Moments]

        public init(step: Int, moments: [Moments]) {
            self.step = step
            self.moments = moments
        }
    }

    /// A state that does not belong to this optimizer's tensors.
    public struct StateMismatch: Error, CustomStringConvertible {
        public let description: String
    }

    public let settings: Settings
    public let tensors: [Tensor]
    /// Steps taken; the next step is `stepCount + 1` in torch's numbering.
    public private(set) var stepCount = 0

    /// Moments of all tensors in one block: expAvg, then expAvgSq, then (amsgrad) maxExpAvgSq,
    /// each `parameterCount` floats laid out tensor after tensor.
    private let moments: UnsafeMutablePointer<Float>
    private let offsets: [Int]
    public let parameterCount: Int

    /// Bytes of optimizer state for `parameters` fp32 parameters: two moments (three with amsgrad).
    public static func stateBytes(parameters: Int, amsgrad: Bool = false) -> Int {
        parameters * (amsgrad ? 3 : 2) * MemoryLayout<Float>.size
    }

    public var stateByteCount: Int { Self.stateBytes(parameters: parameterCount, amsgrad: settings.amsgrad) }

    public init(tensors: [Tensor], settings: Settings = Settings()) {
        self.tensors = tensors
        self.settings = settings
        var offsets: [Int] = []
        var total = 0
        for tensor in tensors {
            precondition(tensor.count >= 0)
            offsets.append(total)
            total += tensor.count
        }
        self.offsets = offsets
        parameterCount = total
        let floats = max(1, total * (settings.amsgrad ? 3 : 2))
        moments = .allocate(capacity: floats)
        moments.initialize(repeating: 0, count: floats)
    }

    deinit { moments.deallocate() }

    /// torch's exp_avg of tensor `index`.
    public func expAvg(_ index: Int) -> UnsafeMutableBufferPointer<Float> { moment(0, index) }
    /// torch's exp_avg_sq of tensor `index`.
    public func expAvgSq(_ index: Int) -> UnsafeMutableBufferPointer<Float> { moment(1, index) }
    /// torch's max_exp_avg_sq of tensor `index` (amsgrad only).
    public func maxExpAvgSq(_ index: Int) -> UnsafeMutableBufferPointer<Float>? { settings.amsgrad ? moment(2, index) : nil }

    private func moment(_ kind: Int, _ index: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: moments + kind * parameterCount + offsets[index], count: tensors[index].count)
    }

    /// One optimizer step at learning rate `lr` (default: `settings.lr`; a schedule passes
    /// base·λ(stepCount)). Reads every tensor's gradient; updates values and moments.
    public func step(lr: Double? = nil) {
        stepCount += 1
        let lr = lr ?? settings.lr
        let beta1 = settings.beta1, beta2 = settings.beta2
        let t = Double(stepCount)
        // Python scalars, rounded to Float where torch's kernels receive them.
        let weight = Float(1 - beta1)
        let smallWeight = abs(weight) < 0.5
        let lerpCoefficient = smallWeight ? weight : weight - 1
        let beta2Float = Float(beta2)
        let oneMinusBeta2 = Float(1 - beta2)
        let biasCorrection1 = 1 - pow(beta1, t)
        let biasCorrection2 = 1 - pow(beta2, t)
        let negativeStepSize = Float(-(lr / biasCorrection1))
        let biasCorrection2Sqrt = Float(pow(biasCorrection2, 0.5))
        let eps = Float(settings.eps)
        let maximize = settings.maximize

        for (index, tensor) in tensors.enumerated() {
            let wd = tensor.decays ? settings.weightDecay : 0
            let decay: Float? = wd != 0 ? Float(1 - lr * wd) : nil
            let p = tensor.values, g = tensor.gradients
            let m = expAvg(index).baseAddress!, v = expAvgSq(index).baseAddress!
            let vMax = maxExpAvgSq(index)?.baseAddress
            // Elements are independent, so splitting them across threads changes nothing.
            Parallel.ranges(tensor.count, costPerItem: 16) { range in
                for i in range {
                    var value = p[i]
                    let grad = maximize ? -g[i] : g[i]
                    if let decay { value = value * decay }
                    // lerp_: torch's vector kernel computes fma(coefficient, end − start, base).
                    let m0 = m[i]
                    let mNew = (smallWeight ? m0 : grad).addingProduct(lerpCoefficient, grad - m0)
                    m[i] = mNew
                    let vNew = (v[i] * beta2Float).addingProduct(oneMinusBeta2 * grad, grad)
                    v[i] = vNew
                    var second = vNew
                    if let vMax {
                        let larger = vNew > vMax[i] || vNew.isNaN ? vNew : vMax[i]
                        vMax[i] = larger
                        second = larger
                    }
                    let denominator = second.squareRoot() / biasCorrection2Sqrt + eps
                    p[i] = value + (negativeStepSize * mNew) / denominator
                }
            }
        }
    }

    /// A copy of the step count and every moment.
    public var state: State {
        State(step: stepCount, moments: tensors.indices.map { i in
            State.Moments(name: tensors[i].name, expAvg: Array(expAvg(i)), expAvgSq: Array(expAvgSq(i)),
                          maxExpAvgSq: maxExpAvgSq(i).map { Array($0) })
        })
    }

    /// Puts a saved state back: same tensors (by name, in order, with the same counts).
    public func restore(_ state: State) throws {
        guard state.step >= 0 else { throw StateMismatch(description: "step \(state.step) is negative") }
        guard state.moments.count == tensors.count else {
            throw StateMismatch(description: "the state has moments for \(state.moments.count) tensors, the optimizer has \(tensors.count)")
        }
        for (i, saved) in state.moments.enumerated() {
            let tensor = tensors[i]
            guard saved.name == tensor.name else {
                throw StateMismatch(description: "tensor \(i) is \(tensor.name), the state has \(saved.name)")
            }
            guard saved.expAvg.count == tensor.count, saved.expAvgSq.count == tensor.count else {
                throw StateMismatch(description: "\(tensor.name): \(tensor.count) values, the state has \(saved.expAvg.count) and \(saved.expAvgSq.count)")
            }
            guard (saved.maxExpAvgSq != nil) == settings.amsgrad, saved.maxExpAvgSq.map({ $0.count == tensor.count }) ?? true else {
                throw StateMismatch(description: "\(tensor.name): max_exp_avg_sq is \(saved.maxExpAvgSq == nil ? "missing" : "wrong"); amsgrad is \(settings.amsgrad)")
            }
        }
        for (i, saved) in state.moments.enumerated() {
            _ = expAvg(i).update(fromContentsOf: saved.expAvg)
            _ = expAvgSq(i).update(fromContentsOf: saved.expAvgSq)
            if let values = saved.maxExpAvgSq { _ = maxExpAvgSq(i)!.update(fromContentsOf: values) }
        }
        stepCount = state.step
    }
}
