import Foundation
import SiriusMethod

/// The report's figures, per task, from the metrics and the run's method specs: the paper's figure
/// (accuracy against density for full, the sparse models and Sirius, with 95 % intervals), answered
/// against density, AAL and effective density against density, the τ trade-off (accuracy against AAL)
/// when τ varies, and decode speed per method.
enum ReportFigures {
    struct Figure {
        var id: String
        var caption: String
        var chart: SVGChart?
        /// Already drawn SVG (bar charts).
        var svg: String?

        func render(standalone: Bool = false) -> String {
            if let svg { return standalone ? svg.replacingOccurrences(of: "<svg ", with: "<svg xmlns=\"http://www.w3.org/2000/svg\" ", options: .anchored) : svg }
            return chart?.svg(standalone: standalone) ?? ""
        }
    }

    /// A curve's identity: the methods of one series differ only in the knob on the x axis.
    private struct Curve: Hashable {
        var kind: MethodKind
        var sparsity: SparsityKind
        var catsMode: CATSMode
        var period: Int
        var threshold: Double
        var width: Int
        var adaptive: Double? = nil

        var name: String {
            let sp = sparsity == .cats && catsMode == .threshold ? "cats (threshold)" : sparsity.rawValue
            switch kind {
            case .full: return "full"
            case .sparse: return sp
            case .sirius:
                var s = "Sirius/\(sp) K=\(period) τ=\(MethodSpec.format(threshold))"
                if width > 1 { s += " W=\(width)" }
                if let a = adaptive { s += " adaptive \(MethodSpec.format(a))" }
                return s
            }
        }
    }

    static func figures(for t: TaskReport, config: RunConfig) -> [Figure] {
        let specs = Dictionary(config.methods.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let rows: [(m: MethodMetrics, spec: MethodSpec)] = t.methods.compactMap { m in specs[m.method].map { (m, $0) } }
        let full = rows.first { $0.spec.kind == .full }?.m
        let other = rows.filter { $0.spec.kind != .full && $0.m.results > 0 }
        var figs: [Figure] = []
        let slug = t.task.replacingOccurrences(of: "[^A-Za-z0-9]+", with: "-", options: .regularExpression)

        func curves(_ rs: [(m: MethodMetrics, spec: MethodSpec)]) -> [(Curve, [(m: MethodMetrics, spec: MethodSpec)])] {
            var order: [Curve] = [], groups: [Curve: [(m: MethodMetrics, spec: MethodSpec)]] = [:]
            for r in rs {
                let s = r.spec
                let c = Curve(kind: s.kind, sparsity: s.sparsity, catsMode: s.catsMode, period: s.kind == .sirius ? s.period : 0,
                              threshold: s.kind == .sirius ? s.threshold : 0, width: s.kind == .sirius ? s.treeWidth : 0,
                              adaptive: s.kind == .sirius ? s.adaptivePeriod : nil)
                if groups[c] == nil { order.append(c) }
                groups[c, default: []].append(r)
            }
            // Sparse baselines first, then Sirius, each in the order of the run's methods.
            return order.sorted { ($0.kind == .sparse ? 0 : 1) < ($1.kind == .sparse ? 0 : 1) }.map { ($0, groups[$0]!) }
        }

        // One colour per curve across the task's figures.
        var colors: [Curve: String] = [:]
        for (i, (c, _)) in curves(other).enumerated() { colors[c] = SVGChart.palette[i % SVGChart.palette.count] }

        if !other.isEmpty {
            var acc = SVGChart(title: "\(t.task): accuracy against density (n = \(t.n))", xLabel: "density (fraction of MLP neurons kept)",
                               yLabel: "accuracy", yPercent: true)
            var ans = SVGChart(title: "\(t.task): answered against density", xLabel: "density (fraction of MLP neurons kept)",
                               yLabel: "answered (an answer was extracted)", yPercent: true)
            if let f = full {
                acc.references.append(.init(name: "full", y: f.accuracy, low: f.accuracyLow, high: f.accuracyHigh))
                ans.references.append(.init(name: "full", y: Double(f.answered) / Double(max(1, f.n)), low: f.answeredLow, high: f.answeredHigh))
            }
            for (c, rs) in curves(other) {
                acc.series.append(.init(name: c.name, points: rs.map { .init(x: $0.spec.density, y: $0.m.accuracy, low: $0.m.accuracyLow, high: $0.m.accuracyHigh) },
                                        dashed: c.kind == .sparse, color: colors[c]))
                ans.series.append(.init(name: c.name, points: rs.map { .init(x: $0.spec.density, y: Double($0.m.answered) / Double(max(1, $0.m.n)), low: $0.m.answeredLow, high: $0.m.answeredHigh) },
                                        dashed: c.kind == .sparse, color: colors[c]))
            }
            let ds = other.map(\.spec.density)
            let xr = SVGChart.padded(min(ds.min() ?? 0, 1), max(ds.max() ?? 1, 0))
            acc.xRange = xr; ans.xRange = xr
            acc.yRange = 0...1; ans.yRange = 0...1
            figs.append(Figure(id: "\(slug)-accuracy", caption: "Accuracy of full (line, band = 95 % interval), the sparse models (dashed) and Sirius against density; bars are 95 % Wilson intervals.", chart: acc))
            figs.append(Figure(id: "\(slug)-answered", caption: "The share of examples where an answer could be extracted at all: a sparse model's collapse shows here first.", chart: ans))

            let sirius = other.filter { $0.spec.kind == .sirius && $0.m.aal != nil }
            if !sirius.isEmpty {
                var aal = SVGChart(title: "\(t.task): AAL against density", xLabel: "density", yLabel: "average advance length (tokens per period)")
                var eff = SVGChart(title: "\(t.task): effective density against density", xLabel: "density", yLabel: "effective density ((K−1)·d + 1) / AAL")
                for (c, rs) in curves(sirius) {
                    aal.series.append(.init(name: c.name, points: rs.map { .init(x: $0.spec.density, y: $0.m.aal!) }, color: colors[c]))
                    eff.series.append(.init(name: c.name, points: rs.compactMap { r in r.m.effectiveDensity.map { .init(x: r.spec.density, y: $0) } }, color: colors[c]))
                }
                aal.xRange = xr; eff.xRange = xr
                let maxK = Double(sirius.map(\.spec.period).max() ?? 16)
                aal.yRange = 0...maxK
                figs.append(Figure(id: "\(slug)-aal", caption: "Tokens advanced per period (the period K is the ceiling).", chart: aal))
                if eff.series.contains(where: { !$0.points.isEmpty }) {
                    figs.append(Figure(id: "\(slug)-effective-density", caption: "Effective density: what Sirius costs in weights read per token, relative to full.", chart: eff))
                }
                // The τ trade-off: Sirius methods that differ only in τ.
                var byRest: [String: [(m: MethodMetrics, spec: MethodSpec)]] = [:], restOrder: [String] = []
                for r in sirius {
                    let key = "Sirius/\(r.spec.sparsity.rawValue)@\(MethodSpec.format(r.spec.density)) K=\(r.spec.period)\(r.spec.treeWidth > 1 ? " W=\(r.spec.treeWidth)" : "")\(r.spec.adaptivePeriod.map { " adaptive \(MethodSpec.format($0))" } ?? "")"
                    if byRest[key] == nil { restOrder.append(key) }
                    byRest[key, default: []].append(r)
                }
                let swept = restOrder.filter { Set(byRest[$0]!.map(\.spec.threshold)).count > 1 }
                if !swept.isEmpty {
                    var tr = SVGChart(title: "\(t.task): the τ trade-off", xLabel: "AAL (tokens per period)", yLabel: "accuracy", yPercent: true)
                    for k in swept {
                        tr.series.append(.init(name: k, points: byRest[k]!.sorted { $0.m.aal! < $1.m.aal! }.map {
                            .init(x: $0.m.aal!, y: $0.m.accuracy, low: $0.m.accuracyLow, high: $0.m.accuracyHigh, label: "τ=\(MethodSpec.format($0.spec.threshold))")
                        }))
                    }
                    if let f = full { tr.references.append(.init(name: "full", y: f.accuracy, low: f.accuracyLow, high: f.accuracyHigh)) }
                    tr.yRange = 0...1
                    figs.append(Figure(id: "\(slug)-threshold", caption: "Accuracy against AAL as τ varies: a lower τ accepts more drafts (longer advances) and corrects less.", chart: tr))
                }
            }
        }
        let timed = rows.filter { $0.m.tokensPerSecond != nil }
        if !timed.isEmpty {
            let items = timed.map { r in
                (label: r.m.method, value: r.m.tokensPerSecond!,
                 note: String(format: "%.1f tok/s", r.m.tokensPerSecond!) + (r.m.timeRatioToFull.map { String(format: ", %.2f× full's time", $0) } ?? ""))
            }
            figs.append(Figure(id: "\(slug)-speed", caption: "Decode speed of the examples decoded alone (the timing sample), per method.",
                               svg: SVGChart.bars(title: "\(t.task): tokens per second (decoded alone)", xLabel: "generated tokens per second", items: items)))
        }
        return figs
    }
}
