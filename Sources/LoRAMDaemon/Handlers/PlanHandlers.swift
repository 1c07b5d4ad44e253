import Foundation
import RPC

/// `memory/plan`: decoded here, planned by `PlanningService`.
extension Daemon {
    func registerPlanning() {
        router.register("memory/plan", lane: .quick) { [unowned self] (params: PlanningService.PlanParams, _) in try planning.plan(params) }
    }
}
