import Foundation

/// A small chart drawn as SVG text: points joined by lines per series, optional vertical interval
/// bars, optional horizontal reference lines with a band (the full model), axes with round ticks and
/// a legend. Written here rather than taken from a plotting library: the project has no JavaScript or
/// Python at report time, and an SVG of points and lines is a few hundred bytes of text.
struct SVGChart {
    struct Point {
        var x: Double
        var y: Double
        var low: Double? = nil
        var high: Double? = nil
        /// Written beside the point (e.g. τ on a trade-off curve).
        var label: String? = nil
    }

    struct Series {
        var name: String
        var points: [Point]
        /// Dashed line (sparse baselines), solid otherwise.
        var dashed = false
        /// Points only, no joining line.
        var scatter = false
        /// Fixed colour (the same curve in every figure); nil: the palette by position.
        var color: String? = nil
    }

    /// A horizontal reference: a line at `y` with an optional band (the full model's interval).
    struct Reference {
        var name: String
        var y: Double
        var low: Double? = nil
        var high: Double? = nil
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series] = []
    var references: [Reference] = []
    /// Fixed axis ranges (nil: from the data, padded).
    var xRange: ClosedRange<Double>? = nil
    var yRange: ClosedRange<Double>? = nil
    /// Y ticks as percentages.
    var yPercent = false
    var width = 640.0
    var height = 380.0

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    static let referenceColor = "#444444"

    var isEmpty: Bool { series.allSatisfy { $0.points.isEmpty } && references.isEmpty }

    /// The chart as an `<svg>` element. `standalone` adds the XML namespace a separate .svg file needs
    /// (inline SVG in HTML needs none, so the page names no external address).
    func svg(standalone: Bool = false) -> String {
        let left = 64.0, right = 180.0, top = 34.0, bottom = 48.0
        let pw = width - left - right, ph = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }
        let ys = series.flatMap { $0.points.flatMap { [$0.y, $0.low ?? $0.y, $0.high ?? $0.y] } }
            + references.flatMap { [$0.y, $0.low ?? $0.y, $0.high ?? $0.y] }
        let xr = xRange ?? Self.padded(xs.min() ?? 0, xs.max() ?? 1)
        let yr = yRange ?? Self.padded(ys.min() ?? 0, ys.max() ?? 1)
        let px = { (x: Double) in left + (xr.upperBound > xr.lowerBound ? (x - xr.lowerBound) / (xr.upperBound - xr.lowerBound) : 0.5) * pw }
        let py = { (y: Double) in top + ph - (yr.upperBound > yr.lowerBound ? (y - yr.lowerBound) / (yr.upperBound - yr.lowerBound) : 0.5) * ph }

        var o = "<svg \(standalone ? "xmlns=\"http://www.w3.org/2000/svg\" " : "")width=\"\(Self.n(width))\" height=\"\(Self.n(height))\" viewBox=\"0 0 \(Self.n(width)) \(Self.n(height))\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\">\n"
        o += "<title>\(Self.escape(title))</title>\n"
        o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        o += "<text x=\"\(Self.n(left))\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(Self.escape(title))</text>\n"
        // Grid and ticks.
        for t in Self.ticks(yr) {
            let y = py(t)
            o += "<line x1=\"\(Self.n(left))\" y1=\"\(Self.n(y))\" x2=\"\(Self.n(left + pw))\" y2=\"\(Self.n(y))\" stroke=\"#e5e5e5\"/>\n"
            o += "<text x=\"\(Self.n(left - 6))\" y=\"\(Self.n(y + 4))\" text-anchor=\"end\">\(yPercent ? Self.percent(t) : Self.tick(t))</text>\n"
        }
        for t in Self.ticks(xr) {
            let x = px(t)
            o += "<line x1=\"\(Self.n(x))\" y1=\"\(Self.n(top + ph))\" x2=\"\(Self.n(x))\" y2=\"\(Self.n(top + ph + 5))\" stroke=\"#333\"/>\n"
            o += "<text x=\"\(Self.n(x))\" y=\"\(Self.n(top + ph + 18))\" text-anchor=\"middle\">\(Self.tick(t))</text>\n"
        }
        o += "<rect x=\"\(Self.n(left))\" y=\"\(Self.n(top))\" width=\"\(Self.n(pw))\" height=\"\(Self.n(ph))\" fill=\"none\" stroke=\"#333\"/>\n"
        o += "<text x=\"\(Self.n(left + pw / 2))\" y=\"\(Self.n(height - 10))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        o += "<text x=\"16\" y=\"\(Self.n(top + ph / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(Self.n(top + ph / 2)))\">\(Self.escape(yLabel))</text>\n"

        var legend: [(name: String, color: String, dashed: Bool)] = []
        for r in references {
            if let lo = r.low, let hi = r.high {
                o += "<rect x=\"\(Self.n(left))\" y=\"\(Self.n(py(hi)))\" width=\"\(Self.n(pw))\" height=\"\(Self.n(max(0, py(lo) - py(hi))))\" fill=\"\(Self.referenceColor)\" fill-opacity=\"0.10\"/>\n"
            }
            o += "<line x1=\"\(Self.n(left))\" y1=\"\(Self.n(py(r.y)))\" x2=\"\(Self.n(left + pw))\" y2=\"\(Self.n(py(r.y)))\" stroke=\"\(Self.referenceColor)\" stroke-width=\"1.5\"/>\n"
            legend.append((r.name, Self.referenceColor, false))
        }
        for (i, s) in series.enumerated() where !s.points.isEmpty {
            let color = s.color ?? Self.palette[i % Self.palette.count]
            let pts = s.points.sorted { $0.x < $1.x }
            if !s.scatter && pts.count > 1 {
                let path = pts.map { "\(Self.n(px($0.x))),\(Self.n(py($0.y)))" }.joined(separator: " ")
                o += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            }
            for p in pts {
                let x = px(p.x)
                if let lo = p.low, let hi = p.high {
                    o += "<line x1=\"\(Self.n(x))\" y1=\"\(Self.n(py(lo)))\" x2=\"\(Self.n(x))\" y2=\"\(Self.n(py(hi)))\" stroke=\"\(color)\" stroke-width=\"1.2\"/>\n"
                    for yy in [lo, hi] {
                        o += "<line x1=\"\(Self.n(x - 4))\" y1=\"\(Self.n(py(yy)))\" x2=\"\(Self.n(x + 4))\" y2=\"\(Self.n(py(yy)))\" stroke=\"\(color)\" stroke-width=\"1.2\"/>\n"
                    }
                }
                o += "<circle cx=\"\(Self.n(x))\" cy=\"\(Self.n(py(p.y)))\" r=\"3.5\" fill=\"\(color)\"/>\n"
                if let l = p.label {
                    o += "<text x=\"\(Self.n(x + 6))\" y=\"\(Self.n(py(p.y) - 6))\" fill=\"\(color)\" font-size=\"11\">\(Self.escape(l))</text>\n"
                }
            }
            legend.append((s.name, color, s.dashed))
        }
        for (i, l) in legend.enumerated() {
            let y = top + 10 + Double(i) * 18, x = left + pw + 14
            o += "<line x1=\"\(Self.n(x))\" y1=\"\(Self.n(y))\" x2=\"\(Self.n(x + 22))\" y2=\"\(Self.n(y))\" stroke=\"\(l.color)\" stroke-width=\"2\"\(l.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            o += "<text x=\"\(Self.n(x + 28))\" y=\"\(Self.n(y + 4))\">\(Self.escape(l.name))</text>\n"
        }
        return o + "</svg>\n"
    }

    /// A horizontal bar chart: one bar per (label, value), the value written at the bar's end.
    static func bars(title: String, xLabel: String, items: [(label: String, value: Double, note: String)], width: Double = 640) -> String {
        // Room for the longest label and note at about 7 px a character (12 px sans-serif), so no
        // text is clipped at the picture's edge.
        let left = max(120, 7 * Double(items.map(\.label.count).max() ?? 0) + 16)
        let right = max(80, 7 * Double(items.map(\.note.count).max() ?? 0) + 12)
        let top = 34.0, rowH = 24.0
        let height = top + Double(items.count) * rowH + 40
        let maxV = max(items.map(\.value).max() ?? 1, 1e-9)
        let pw = max(120, width - left - right)
        let width = left + pw + right
        var o = "<svg width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\">\n"
        o += "<title>\(escape(title))</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        o += "<text x=\"\(n(left))\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
        for (i, it) in items.enumerated() {
            let y = top + Double(i) * rowH
            let w = it.value / maxV * pw
            o += "<text x=\"\(n(left - 8))\" y=\"\(n(y + 15))\" text-anchor=\"end\">\(escape(it.label))</text>\n"
            o += "<rect x=\"\(n(left))\" y=\"\(n(y + 3))\" width=\"\(n(w))\" height=\"\(n(rowH - 8))\" fill=\"\(palette[i % palette.count])\"/>\n"
            o += "<text x=\"\(n(left + w + 6))\" y=\"\(n(y + 15))\">\(escape(it.note))</text>\n"
        }
        o += "<text x=\"\(n(left + pw / 2))\" y=\"\(n(height - 12))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        return o + "</svg>\n"
    }

    // MARK: helpers

    /// The range around [lo, hi] with 8 % margins (a single value gets ±0.5 or ±10 %).
    static func padded(_ lo: Double, _ hi: Double) -> ClosedRange<Double> {
        if hi <= lo { let m = lo == 0 ? 0.5 : abs(lo) * 0.1; return (lo - m)...(hi + m) }
        let m = (hi - lo) * 0.08
        return (lo - m)...(hi + m)
    }

    /// Round tick values inside `r`: steps of 1, 2 or 5 × 10^k, about five of them.
    static func ticks(_ r: ClosedRange<Double>) -> [Double] {
        let span = r.upperBound - r.lowerBound
        guard span > 0, span.isFinite else { return [r.lowerBound] }
        // step = s · 10^e; tick k is k·s scaled by 10^e in one rounding (0.6, not 3 × 0.2).
        let e = Int(floor(log10(span / 5)))
        let scale = { (k: Int) -> Double in e >= 0 ? Double(k) * pow(10, Double(e)) : Double(k) / pow(10, Double(-e)) }
        let s = [1, 2, 5, 10].first { scale($0) >= span / 5 } ?? 10
        var k = Int((r.lowerBound / scale(s)).rounded(.up)) * s
        var out: [Double] = []
        while scale(k) <= r.upperBound + scale(s) * 1e-9 { out.append(scale(k)); k += s }
        return out
    }

    static func tick(_ v: Double) -> String {
        let s = String(format: "%.4g", v)
        return s
    }

    static func percent(_ v: Double) -> String { String(format: "%.0f%%", v * 100) }

    /// Coordinates with one decimal: the file stays small and its bytes do not depend on the platform.
    static func n(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
