import Foundation

/// Finding where to resume: `train/run` writes `checkpoint-<step>` folders and `final` into its
/// `outDir`, each complete or absent (AtomicDirectory). Given that folder, the newest complete
/// save is the one to continue from, so a run killed at any moment loses at most `saveEvery` steps.
public enum TrainingCheckpoints {
    public static let finalName = "final"
    public static let checkpointPrefix = "checkpoint-"

    /// The save to resume from: `directory` itself when it holds `state.json` (a train/save or one
    /// checkpoint), else the newest complete `checkpoint-<step>` or `final` in it, by the step its
    /// state records. Stale temporaries of killed daemons are removed from the folder searched
    /// (the checkpoint's parent, or `directory`). FormatError when there is no complete save, with
    /// what is wrong with each candidate.
    public static func resumable(_ directory: URL) throws -> URL {
        let ownState = directory.appendingPathComponent(TrainingJob.stateFile)
        if FileManager.default.fileExists(atPath: ownState.path) {
            TemporaryOutput.removeStale(in: directory.deletingLastPathComponent())
            return directory
        }
        TemporaryOutput.removeStale(in: directory)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter(isCheckpointName)
        guard !names.isEmpty else {
            throw FormatError(file: TrainingJob.stateFile, "missing in \(directory.path), which holds no \(checkpointPrefix)<step> or \(finalName) folder either")
        }
        var complete: [(url: URL, step: Int)] = []
        var problems: [String] = []
        for name in names.sorted() {
            let url = directory.appendingPathComponent(name)
            do {
                complete.append((url, try completedSteps(url)))
            } catch {
                problems.append("\(name): \(error)")
            }
        }
        // Ties (final and the last checkpoint hold the same step) go to the later name, final.
        guard let newest = complete.max(by: { ($0.step, $0.url.lastPathComponent) < ($1.step, $1.url.lastPathComponent) }) else {
            throw FormatError(file: TrainingJob.stateFile, "no complete checkpoint in \(directory.path): \(problems.joined(separator: "; "))")
        }
        return newest.url
    }

    /// The steps a save records, after checking it is whole: a valid state.json, and the parameter
    /// and optimizer files readable as safetensors.
    public static func completedSteps(_ checkpoint: URL) throws -> Int {
        let state = try TrainingJob.readState(checkpoint)
        _ = try SafetensorsFile(url: checkpoint.appendingPathComponent(TrainingJob.parametersFile))
        _ = try SafetensorsFile(url: checkpoint.appendingPathComponent(TrainingJob.optimizerFile))
        return state.completedSteps
    }

    static func isCheckpointName(_ name: String) -> Bool {
        name == finalName || (name.hasPrefix(checkpointPrefix) && Int(name.dropFirst(checkpointPrefix.count)) != nil)
    }
}
