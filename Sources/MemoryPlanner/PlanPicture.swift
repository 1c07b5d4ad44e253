/// A placed plan as an SVG picture: time (op index) across, offset up, one rectangle per buffer
/// coloured by kind, a legend, a line at the peak and a dashed one at the lower bound, and each
/// buffer's name, size and ops as a tooltip (`<title>`). Self-contained (no fonts, scripts or
/// links), so it can be written to a file, sent over RPC or embedded in a notebook as is.
///
/// Where the rectangles stack up to the peak line is where memory goes; a gap between the two
/// lines is what the placement lost to fragmentation.
public enum PlanPicture {
    /// The fill colour of each kind.
    public static func colour(_ kind: BufferKind) -> String {
        switch kind {
        case .weight: return "#8c8c8c"
        case .adapter: return "#e377c2"
        case .gradient: return "#d62728"
        case .optimizer: return "#9467bd"
        case .activation: return "#1f77b4"
        case .kvCache: return "#2ca02c"
        case .workspace: return "#ff7f0e"
        }
    }

    /// The picture, `width` × `height` pixels including margins and legend.
    public static func svg(_ placement: BestFitPlacement, width: Int = 960, height: Int = 540) -> String {
        let left = 90.0, right = 170.0, top = 30.0, bottom = 40.0
        let plotWidth = Double(width) - left - right, plotHeight = Double(height) - top - bottom
        let opCount = max(placement.lifetimes.liveBytes.count, 1)
        let yMax = Double(max(placement.peak, placement.lowerBound, 1))
        func x(_ op: Int) -> Double { left + plotWidth * Double(op) / Double(opCount) }
        func y(_ offset: Int) -> Double { top + plotHeight * (1 - Double(offset) / yMax) }
        func f(_ v: Double) -> String { String(Double((v * 100).rounded()) / 100) }

        var out = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
        font-family="sans-serif" font-size="11">
        <rect x="0" y="0" width="\(width)" height="\(height)" fill="#ffffff"/>
        <text x="\(f(left))" y="18" font-size="13">\(escape("\(placement.program.buffers.count) buffers, \(opCount) ops: peak \(bytes(placement.peak)), lower bound \(bytes(placement.lowerBound)), ratio \(ratio(placement.ratio))"))</text>

        """
        // Axes: offset up the left side, op index along the bottom.
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotHeight))\" stroke=\"#000000\"/>\n"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(top + plotHeight))\" stroke=\"#000000\"/>\n"
        out += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(height - 8)\" text-anchor=\"middle\">op</text>\n"
        out += "<text x=\"\(f(left - 6))\" y=\"\(f(top + plotHeight))\" text-anchor=\"end\">0</text>\n"
        out += "<text x=\"\(f(left + plotWidth))\" y=\"\(f(top + plotHeight + 14))\" text-anchor=\"end\">\(opCount)</text>\n"

        out += "<g stroke=\"#ffffff\" stroke-width=\"0.3\">\n"
        for p in placement.placements {
            let x0 = x(p.lifetime.start), x1 = x(p.lifetime.end + 1)
            let y0 = y(p.offset + p.size), h = max(y(p.offset) - y0, 0.5)
            let tip = "\(p.name) (\(p.kind.rawValue)\(p.persistent ? ", persistent" : "")): \(bytes(p.bytes)) at offset \(p.offset), "
                + "ops \(p.lifetime.start)–\(p.lifetime.end)"
            out += "<rect class=\"buffer\" x=\"\(f(x0))\" y=\"\(f(y0))\" width=\"\(f(x1 - x0))\" height=\"\(f(h))\" "
                + "fill=\"\(colour(p.kind))\"><title>\(escape(tip))</title></rect>\n"
        }
        out += "</g>\n"

        // Labels sit inside the plot at its right end: the peak's just above its line, the lower
        // bound's just below its own (explicit offsets; renderers differ on baselines); when the
        // two lines coincide, one label names both.
        let same = abs(y(placement.peak) - y(placement.lowerBound)) < 14
        for (value, label, dash, nudge) in [(placement.peak, same ? "peak = lower bound" : "peak", "", -4.0),
                                            (placement.lowerBound, same ? "" : "lower bound", " stroke-dasharray=\"6 4\"", 13.0)] {
            let ly = y(value)
            out += "<line x1=\"\(f(left))\" y1=\"\(f(ly))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(ly))\" stroke=\"#000000\"\(dash)/>\n"
            guard !label.isEmpty else { continue }
            out += "<text x=\"\(f(left + plotWidth - 4))\" y=\"\(f(ly + nudge))\" text-anchor=\"end\" font-size=\"12\">"
                + "\(escape(label)) \(bytes(value))</text>\n"
        }

        // The legend, one swatch per kind.
        for (i, kind) in BufferKind.allCases.enumerated() {
            let ly = top + 20 * Double(i)
            out += "<rect x=\"\(f(left + plotWidth + 20))\" y=\"\(f(ly))\" width=\"14\" height=\"14\" fill=\"\(colour(kind))\"/>\n"
            out += "<text x=\"\(f(left + plotWidth + 40))\" y=\"\(f(ly + 11))\">\(kind.rawValue)</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    /// `text` safe inside XML character data and attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }

    /// "1.5 GiB", "64 KiB", "100 B".
    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : "\(format3(value)) \(units[unit])"
    }

    /// Four decimals: fragmentation of a tenth of a percent shows.
    private static func ratio(_ v: Double) -> String { String((v * 10000).rounded() / 10000) }

    /// Three significant-ish digits without Foundation: 1.23, 12.3, 123.
    private static func format3(_ v: Double) -> String {
        let decimals = v < 10 ? 2 : v < 100 ? 1 : 0
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (v * scale).rounded() / scale
        return decimals == 0 ? String(Int(rounded)) : String(rounded)
    }
}
