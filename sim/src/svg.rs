//! The stock chart: available units per region (and the pool) over time, one small panel per
//! design, as a dependency-free SVG. It shows at a glance where units sat while buyers were
//! waiting — the picture the demo chart gave of regions drained into one.

use std::fmt::Write as _;

use crate::report::Comparison;

const W: f64 = 640.0;
const PANEL_H: f64 = 150.0;
const LEFT: f64 = 50.0;
const TOP: f64 = 24.0;
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
];

/// One SVG with a panel per design.
pub fn chart(c: &Comparison) -> String {
    let h = TOP + PANEL_H * c.runs.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="14">{} · seed {} · available units per region (dashed: pool)</text>"#,
        esc(&c.scenario),
        c.seed
    );
    let t_max = c
        .runs
        .iter()
        .filter_map(|r| r.series.t.last().copied())
        .fold(0.1, f64::max);
    for (k, run) in c.runs.iter().enumerate() {
        let y0 = TOP + PANEL_H * k as f64;
        let plot_h = PANEL_H - 30.0;
        let plot_w = W - LEFT - 10.0;
        let y_max = run
            .series
            .stock
            .iter()
            .flat_map(|row| row.iter().copied())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/><text x="{}" y="{}">{}</text><text x="4" y="{}">{y_max}</text><text x="4" y="{}">0</text><text x="{}" y="{}">{t_max:.2}s</text>"##,
            LEFT + 4.0,
            y0 + 12.0,
            run.design.as_str(),
            y0 + 10.0,
            y0 + plot_h,
            W - 45.0,
            y0 + plot_h + 12.0
        );
        let columns = run.series.stock.first().map_or(0, Vec::len);
        for col in 0..columns {
            let pool = col + 1 == columns;
            let color = if pool {
                "#000"
            } else {
                PALETTE[col % PALETTE.len()]
            };
            let mut points = String::new();
            for (t, row) in run.series.t.iter().zip(&run.series.stock) {
                let x = LEFT + plot_w * t / t_max;
                let y = y0 + plot_h - plot_h * row[col] as f64 / y_max;
                let _ = write!(points, "{x:.1},{y:.1} ");
            }
            let dash = if pool {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.2"{dash} points="{}"/>"#,
                points.trim_end()
            );
        }
    }
    let legend_y = h - 8.0;
    for (i, name) in c.regions.iter().take(PALETTE.len()).enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{legend_y}" fill="{}">{}</text>"#,
            LEFT + 60.0 * i as f64,
            PALETTE[i],
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
