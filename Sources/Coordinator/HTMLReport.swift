import Foundation

/// One self-contained HTML page per run: the facts, per task the paper's table, the figures (inline
/// SVG) and every method's metrics, then the notes. No scripts, fonts, styles or images from anywhere
/// else, so the file opens offline and can be mailed or archived as it is.
enum HTMLReport {
    static func render(_ r: RunReport, config: RunConfig) -> String {
        var o = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Sirius run \(esc(r.runId))</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
            h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
            table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
            th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
            th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
            .warning { color: #a00; font-weight: bold; } .note { color: #555; font-size: 0.9em; }
            figure { margin: 1.5em 0; } figcaption { color: #555; font-size: 0.9em; max-width: 640px; }
            .figures { display: flex; flex-wrap: wrap; gap: 1em; }
            </style>
            </head>
            <body>
            <h1>Run \(esc(r.runId)) — \(esc(r.status))\(r.note.map { " (\(esc($0)))" } ?? "")</h1>

            """
        for fact in ReportRenderer.facts(r) {
            o += "<p\(fact.warning ? " class=\"warning\"" : "")>\(esc(fact.text))</p>\n"
        }
        if let s = config.sweep {
            o += "<p>Swept: \(esc(s.parameter.rawValue)) over \(esc(s.values.map { String(format: "%g", $0) }.joined(separator: ", "))).</p>\n"
        }
        for t in r.tasks {
            o += "<section id=\"\(esc(t.task))\">\n<h2>\(esc(t.task)) (n = \(t.n))</h2>\n"
            if let summary = ReportRenderer.summaryTable(t, config: config) { o += table(summary) }
            let figs = ReportFigures.figures(for: t, config: config)
            if !figs.isEmpty {
                o += "<div class=\"figures\">\n"
                for f in figs {
                    o += "<figure id=\"\(esc(f.id))\">\n\(f.render())<figcaption>\(esc(f.caption))</figcaption>\n</figure>\n"
                }
                o += "</div>\n"
            }
            o += table(ReportRenderer.methodTable(t))
            o += "<p class=\"note\">\(esc(ReportRenderer.agreementRule))</p>\n"
            if t.methods.contains(where: { $0.failed > 0 }) { o += "<p class=\"note\">\(esc(ReportRenderer.strictNote))</p>\n" }
            o += "</section>\n"
        }
        o += "<p class=\"note\">\(esc(ReportRenderer.timingNote(r)))</p>\n"
        o += "</body>\n</html>\n"
        return o
    }

    static func table(_ t: ReportRenderer.Table) -> String {
        var o = "<table>\n<thead><tr>" + t.header.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for r in t.rows { o += "<tr>" + r.map { "<td>\(esc($0))</td>" }.joined() + "</tr>\n" }
        return o + "</tbody>\n</table>\n"
    }

    static func esc(_ s: String) -> String { SVGChart.escape(s) }
}
