//! The SVG chart: each region's available stock (solid, left axis) and demand (dashed, right
//! axis) over the run. Hand-written SVG text, pure, no dependencies.
//!
//! Stock and demand come from the coordinator samples. Without a coordinator the stock is
//! unknown and the demand lines show the attempts per second the client itself sent.

use std::fmt::Write;

use crate::report::Report;

const W: f64 = 900.0;
const H: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 100.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A "nice" axis for values up to `max`: (axis maximum, tick step), about five ticks.
pub(crate) fn nice_axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One line of the chart: (seconds, value) points.
struct Line {
    points: Vec<(f64, f64)>,
}

/// Renders the chart of `r`.
pub fn render(r: &Report) -> String {
    let names: Vec<&String> = r.regions.keys().collect();
    let sampled = !r.series.is_empty();
    let stock: Vec<Line> = names
        .iter()
        .map(|n| Line {
            points: r
                .series
                .iter()
                .filter_map(|s| {
                    let a = s.regions.get(*n)?.available?;
                    Some((s.t_s, a as f64))
                })
                .collect(),
        })
        .collect();
    let demand: Vec<Line> = names
        .iter()
        .map(|n| Line {
            points: if sampled {
                r.series
                    .iter()
                    .filter_map(|s| Some((s.t_s, s.regions.get(*n)?.demand)))
                    .collect()
            } else {
                r.client_series.get(*n).map_or_else(Vec::new, |b| {
                    b.iter()
                        .enumerate()
                        .map(|(i, x)| (i as f64 + 0.5, x.attempts as f64))
                        .collect()
                })
            },
        })
        .collect();
    let max_of = |lines: &[Line]| {
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max)
    };
    let t_end = stock
        .iter()
        .chain(&demand)
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(r.duration_s, f64::max);
    let (x_max, x_step) = nice_axis(t_end);
    let (s_max, s_step) = nice_axis(max_of(&stock));
    let (d_max, d_step) = nice_axis(max_of(&demand));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |t: f64| LEFT + t / x_max * pw;
    let y = |v: f64, max: f64| TOP + ph - v / max * ph;

    let mut s = String::new();
    let o = &mut s;
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">Product {}: available stock and demand per region</text>"#,
        W / 2.0,
        r.product
    );
    // Axes.
    let (x0, x1, y0, y1) = (LEFT, LEFT + pw, TOP, TOP + ph);
    let _ = writeln!(
        o,
        r#"<path d="M{x0},{y0} V{y1} H{x1} V{y0}" fill="none" stroke="black"/>"#
    );
    let mut t = 0.0;
    while t <= x_max + 1e-9 {
        let px = x(t);
        let _ = writeln!(
            o,
            r##"<line x1="{px:.1}" y1="{y1}" x2="{px:.1}" y2="{}" stroke="black"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y1 + 5.0,
            y1 + 18.0,
            fmt_tick(t)
        );
        t += x_step;
    }
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since start</text>"#,
        LEFT + pw / 2.0,
        y1 + 36.0
    );
    for (max, step, at_left) in [(s_max, s_step, true), (d_max, d_step, false)] {
        let (ax, dir, anchor) = if at_left {
            (x0, -1.0, "end")
        } else {
            (x1, 1.0, "start")
        };
        let mut v = 0.0;
        while v <= max + 1e-9 {
            let py = y(v, max);
            let _ = writeln!(
                o,
                r##"<line x1="{ax}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="black"/><text x="{:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##,
                ax + 5.0 * dir,
                ax + 8.0 * dir,
                py + 4.0,
                fmt_tick(v)
            );
            if at_left && v > 0.0 {
                let _ = writeln!(
                    o,
                    r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#e0e0e0"/>"##
                );
            }
            v += step;
        }
    }
    let (cy, lx, rx) = (TOP + ph / 2.0, 20.0, W - 16.0);
    let _ = writeln!(
        o,
        r#"<text x="{lx}" y="{cy}" text-anchor="middle" transform="rotate(-90 {lx} {cy})">available units (solid)</text>"#
    );
    let demand_label = if sampled {
        "demand, attempts/s (dashed)"
    } else {
        "client attempts/s (dashed)"
    };
    let _ = writeln!(
        o,
        r#"<text x="{rx}" y="{cy}" text-anchor="middle" transform="rotate(90 {rx} {cy})">{demand_label}</text>"#
    );
    if !sampled {
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888">no coordinator samples: stock unknown</text>"##,
            LEFT + pw / 2.0,
            TOP + 16.0
        );
    }
    // Lines.
    let polyline = |o: &mut String, line: &Line, max: f64, color: &str, dashed: bool| {
        let pts: Vec<String> = line
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v, max)))
            .collect();
        let dash = if dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{}"{dash}/>"#,
            pts.join(" "),
            if dashed { 1.5 } else { 2.0 }
        );
    };
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if sampled {
            polyline(o, &stock[i], s_max, color, false);
        }
        polyline(o, &demand[i], d_max, color, true);
        // Legend entry.
        let lx = LEFT + (i % 4) as f64 * (pw / 4.0);
        let ly = y1 + 58.0 + (i / 4) as f64 * 18.0;
        let _ = writeln!(
            o,
            r#"<line x1="{lx:.1}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="2"/><line x1="{:.1}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="1.5" stroke-dasharray="6,4"/><text x="{:.1}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 22.0,
            lx + 40.0,
            lx + 46.0,
            ly + 4.0,
            escape(name)
        );
    }
    let _ = writeln!(o, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RegionReport;
    use crate::series::{ClientBucket, RegionSample, Sample};

    fn report(sampled: bool) -> Report {
        let mut r = Report {
            product: 5,
            duration_s: 3.0,
            ..Report::default()
        };
        for name in ["east", "south", "north"] {
            r.regions.insert(name.into(), RegionReport::default());
            r.client_series.insert(
                name.into(),
                vec![
                    ClientBucket {
                        attempts: 100,
                        ..ClientBucket::default()
                    };
                    3
                ],
            );
        }
        if sampled {
            for i in 0..30 {
                let mut s = Sample {
                    t_s: i as f64 / 10.0,
                    total: 300,
                    pool: 0,
                    ..Sample::default()
                };
                for name in ["east", "south", "north"] {
                    let rs = RegionSample {
                        available: Some(100 - i * 3),
                        sold: Some(i * 3),
                        demand: 50.0 + i as f64,
                        alive: true,
                        granted: 100,
                    };
                    s.regions.insert(name.into(), rs);
                }
                r.series.push(s);
            }
        }
        r
    }

    fn check_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn sampled_chart_has_stock_and_demand_per_region() {
        let svg = render(&report(true));
        check_well_formed(&svg);
        let lines: Vec<&str> = svg.lines().filter(|l| l.starts_with("<polyline")).collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines.iter().filter(|l| l.contains("dasharray")).count(), 3);
        for name in ["east", "south", "north"] {
            assert!(svg.contains(&format!(">{name}</text>")));
        }
        assert!(svg.contains("Product 5"));
    }

    #[test]
    fn unsampled_chart_shows_client_demand() {
        let svg = render(&report(false));
        check_well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("stock unknown"));
    }

    #[test]
    fn nice_axes() {
        assert_eq!(nice_axis(100.0), (100.0, 20.0));
        assert_eq!(nice_axis(93.0), (100.0, 20.0));
        assert_eq!(nice_axis(7.0), (8.0, 2.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
        assert_eq!(nice_axis(30.0), (30.0, 10.0));
    }
}
