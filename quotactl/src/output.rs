//! Human output: one [`Table`] renderer that sizes every column to its content, one renderer
//! per answer built on it, and [`emit`], which prints the answer as `-o` asks (`table`,
//! `wide`: the less important columns too, `json`: the API's JSON unchanged, `yaml`: the same
//! document as YAML).

use std::fmt::Write as _;

use chrono::SecondsFormat;
use clap::ValueEnum;
use quota_shared::policy::Move;
use quota_shared::wire::{
    AuditReport, OrderRecord, ProductView, RegionView, RoundView, SaleReport, StatusView,
};

use crate::contexts::ConfigView;

use self::Align::{Left, Right};

/// How to print an answer (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Format {
    /// Human tables.
    #[default]
    Table,
    /// Human tables with every column (e.g. region URLs, report ages, prices).
    Wide,
    /// The API's JSON, pretty-printed (what scripts and tests parse).
    Json,
    /// The same document as YAML (for operators who keep their tooling in YAML).
    Yaml,
}

impl Format {
    /// A machine-readable document (`json`, `yaml`) rather than a table for people.
    pub(crate) fn is_document(self) -> bool {
        matches!(self, Format::Json | Format::Yaml)
    }
}

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text: left.
    Left,
    /// Numbers: right.
    Right,
}

/// One column: its header, alignment and whether only `-o wide` shows it.
#[derive(Debug, Clone, Copy)]
struct Column {
    head: &'static str,
    align: Align,
    wide_only: bool,
}

/// A table whose columns are as wide as their widest cell (header included): nothing is cut,
/// and a long name only pushes the columns after it to the right, in every row alike.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    indent: usize,
}

/// Blanks between two columns.
const GAP: usize = 2;

impl Table {
    /// A table with these columns (`(header, alignment)`), all shown in every format.
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|&(head, align)| Column {
                    head,
                    align,
                    wide_only: false,
                })
                .collect(),
            rows: Vec::new(),
            indent: 0,
        }
    }

    /// Adds columns only `-o wide` shows (after the others; a row gives their cells last).
    #[must_use]
    pub(crate) fn wide(mut self, columns: &[(&'static str, Align)]) -> Table {
        self.columns
            .extend(columns.iter().map(|&(head, align)| Column {
                head,
                align,
                wide_only: true,
            }));
        self
    }

    /// Indents every line by `n` blanks.
    #[must_use]
    pub(crate) fn indent(mut self, n: usize) -> Table {
        self.indent = n;
        self
    }

    /// Adds a row: one cell per column, wide-only ones included (missing cells are blank).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row after the header, each ending in a newline; with
    /// `wide` false the wide-only columns are left out. No line ends in blanks.
    pub(crate) fn render(&self, wide: bool) -> String {
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| wide || !self.columns[i].wide_only)
            .collect();
        let cell = |row: &[String], i: usize| row.get(i).map_or("", String::as_str).to_string();
        let header: Vec<String> = self.columns.iter().map(|c| c.head.to_string()).collect();
        let widths: Vec<usize> = shown
            .iter()
            .map(|&i| {
                std::iter::once(&header)
                    .chain(&self.rows)
                    .map(|r| width(&cell(r, i)))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = " ".repeat(self.indent);
            for (k, &i) in shown.iter().enumerate() {
                if k > 0 {
                    line.push_str(&" ".repeat(GAP));
                }
                let text = cell(row, i);
                let pad = " ".repeat(widths[k] - width(&text));
                match self.columns[i].align {
                    Left => {
                        line.push_str(&text);
                        line.push_str(&pad);
                    }
                    Right => {
                        line.push_str(&pad);
                        line.push_str(&text);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Columns a text takes on a terminal (one per character: names are short words, and a wide
/// script only shifts its own row's later columns).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// A product: spec, window, total and pool, and each region's `G`, `R`, holdings.
pub(crate) fn product(p: &ProductView, _wide: bool) -> String {
    let s = &p.spec;
    let mut out = format!(
        "product {}  {:?}  price {} (list {})  limit {}/user  policy {}\n",
        s.product_id, s.name, s.price, s.original_price, s.per_user_limit, p.policy
    );
    let _ = writeln!(
        out,
        "window  {} → {}{}",
        s.start_time.to_rfc3339(),
        s.end_time.to_rfc3339(),
        if s.ended {
            "  (ended by the operator)"
        } else {
            ""
        }
    );
    if !s.home_regions.is_empty() {
        let _ = writeln!(
            out,
            "home regions  {}  (each buyer buys only in one of them)",
            s.home_regions.join(", ")
        );
    }
    let _ = writeln!(out, "total {}  pool {}", p.total, p.pool);
    if !p.regions.is_empty() {
        let mut t = Table::new(&[
            ("REGION", Left),
            ("GRANTED", Right),
            ("RELEASED", Right),
            ("HOLDS", Right),
        ]);
        for (r, sh) in &p.regions {
            t.row(vec![
                r.clone(),
                sh.granted.to_string(),
                sh.released.to_string(),
                sh.holds.to_string(),
            ]);
        }
        out.push_str(&t.render(false));
    }
    out
}

/// Every product, one line each; wide adds price, per-user limit, window, state and home
/// regions.
pub(crate) fn products(ps: &[ProductView], wide: bool) -> String {
    let mut t = Table::new(&[
        ("ID", Right),
        ("NAME", Left),
        ("TOTAL", Right),
        ("POOL", Right),
        ("POLICY", Left),
    ])
    .wide(&[
        ("PRICE", Right),
        ("LIMIT", Right),
        ("START", Left),
        ("END", Left),
        ("ENDED", Left),
        ("HOME REGIONS", Left),
    ]);
    for p in ps {
        let s = &p.spec;
        t.row(vec![
            s.product_id.to_string(),
            s.name.clone(),
            p.total.to_string(),
            p.pool.to_string(),
            p.policy.to_string(),
            s.price.to_string(),
            s.per_user_limit.to_string(),
            s.start_time.to_rfc3339_opts(SecondsFormat::Secs, true),
            s.end_time.to_rfc3339_opts(SecondsFormat::Secs, true),
            yes_no(s.ended).into(),
            if s.home_regions.is_empty() {
                "-".into()
            } else {
                s.home_regions.join(",")
            },
        ]);
    }
    t.render(wide)
}

/// A round's moves, then the product after it.
pub(crate) fn round(r: &RoundView, wide: bool) -> String {
    let mut out = String::new();
    if r.moves.is_empty() {
        out.push_str("no moves\n");
    } else {
        let mut t = Table::new(&[("MOVE", Left), ("UNITS", Right), ("REGION", Left)]);
        for m in &r.moves {
            let (what, region, units) = match m {
                Move::Grant { region, units } => ("grant →", region, units),
                Move::Release { region, units } => ("release ←", region, units),
            };
            t.row(vec![what.into(), units.to_string(), region.clone()]);
        }
        out.push_str(&t.render(wide));
    }
    out.push_str(&product(&r.product, wide));
    out
}

/// Every region, its liveness and processes; wide adds its report age and URL.
pub(crate) fn regions(rs: &[RegionView], wide: bool) -> String {
    let mut t = Table::new(&[("REGION", Left), ("ALIVE", Left), ("PROCESSES", Right)])
        .wide(&[("REPORT AGE", Right), ("URL", Left)]);
    for r in rs {
        t.row(vec![
            r.region.clone(),
            yes_no(r.alive).into(),
            r.processes.to_string(),
            r.last_report_ms
                .map_or_else(|| "-".into(), |a| format!("{a} ms")),
            r.url.clone(),
        ]);
    }
    t.render(wide)
}

/// `order show` / `order cancel`: one order, field by field.
pub(crate) fn order(o: &OrderRecord, _wide: bool) -> String {
    let mut t = Table::new(&[("FIELD", Left), ("VALUE", Left)]);
    for (k, v) in [
        ("order", o.order_id.to_string()),
        ("status", o.status.to_string()),
        ("region", o.region.clone()),
        ("product", o.product_id.to_string()),
        ("user", o.user_id.to_string()),
        ("quantity", o.quantity.to_string()),
        ("price", o.price.to_string()),
        (
            "placed",
            o.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
    ] {
        t.row(vec![k.to_string(), v]);
    }
    t.render(false)
}

/// `report`: one row per region and the total (units; revenue in money), then the audit's
/// verdict and its violations, and any region that could not be read.
pub(crate) fn report(r: &SaleReport, wide: bool) -> String {
    let mut out = format!("product {}: {} units on sale\n", r.product_id, r.total);
    let mut t = Table::new(&[
        ("REGION", Left),
        ("SOLD", Right),
        ("PAID", Right),
        ("PENDING", Right),
        ("CANCELLED", Right),
        ("EXPIRED", Right),
        ("RETURNED", Right),
        ("RESOLD", Right),
        ("AVAILABLE", Right),
        ("REVENUE", Right),
    ]);
    for x in r.regions.values().chain(std::iter::once(&r.totals)) {
        t.row(vec![
            x.region.clone(),
            x.sold.to_string(),
            x.paid.to_string(),
            x.pending.to_string(),
            x.cancelled.to_string(),
            x.expired.to_string(),
            x.returned.to_string(),
            x.resold.to_string(),
            x.available.to_string(),
            x.revenue.to_string(),
        ]);
    }
    out.push_str(&t.render(wide));
    for u in &r.unreadable {
        let _ = writeln!(out, "not read (left out of the total): {u}");
    }
    let _ = writeln!(out, "audit: {}", if r.audit.ok { "OK" } else { "FAILED" });
    for v in &r.audit.violations {
        let _ = writeln!(out, "  {v}");
    }
    out
}

/// `config view`: the file, then one row per context (the current one marked `*`).
pub(crate) fn config(v: &ConfigView) -> String {
    let mut out = format!(
        "config file: {}{}\n",
        v.path.display(),
        if v.exists { "" } else { " (none yet)" }
    );
    if v.contexts.is_empty() {
        out.push_str(
            "no contexts: add one, e.g.\n\n[contexts.prod]\nurls = [\"https://coordinator-a:8443\", \
             \"https://coordinator-b:8443\"]\ntoken-file = \"prod-operator.token\"\ncacert = \
             \"prod-ca.pem\"\ntimeout = 10\n",
        );
        return out;
    }
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or_else(|| "-".into(), |p| p.display().to_string())
    };
    let mut t = Table::new(&[
        ("CURRENT", Left),
        ("NAME", Left),
        ("URLS", Left),
        ("TOKEN FILE", Left),
        ("CACERT", Left),
        ("TIMEOUT", Right),
    ]);
    for (name, c) in &v.contexts {
        let current = v.current_context.as_deref() == Some(name.as_str());
        t.row(vec![
            if current { "*" } else { "" }.into(),
            name.clone(),
            c.urls.join(","),
            path(&c.token_file),
            path(&c.cacert),
            c.timeout.map_or_else(|| "-".into(), |s| format!("{s} s")),
        ]);
    }
    out.push_str(&t.render(true));
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// An optional number, or "-".
fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The leader, then per product and region the ledger next to the region's report; wide adds
/// each region's holdings (`G − R`) and the product's etcd write count.
pub(crate) fn status(s: &StatusView, wide: bool) -> String {
    let mut out = format!(
        "leader: {}\n",
        s.leader.as_deref().unwrap_or("(none elected)")
    );
    for p in &s.products {
        let _ = writeln!(
            out,
            "\nproduct {} {:?}  total {}  pool {}  policy {}  {}{}",
            p.product_id,
            p.name,
            p.total,
            p.pool,
            p.policy,
            if p.active { "on sale" } else { "not on sale" },
            if wide {
                format!("  coordinator writes {}", p.coordinator_writes)
            } else {
                String::new()
            }
        );
        let mut t = Table::new(&[
            ("REGION", Left),
            ("GRANTED", Right),
            ("APPLIED", Right),
            ("RELEASED", Right),
            ("SOLD", Right),
            ("AVAILABLE", Right),
            ("IN TRANSIT", Right),
            ("DEMAND/s", Right),
            ("ALIVE", Left),
        ])
        .wide(&[("HOLDS", Right)]);
        for (r, x) in &p.regions {
            t.row(vec![
                r.clone(),
                x.granted.to_string(),
                opt(x.applied),
                x.released.to_string(),
                opt(x.sold),
                opt(x.available),
                opt(x.in_transit),
                format!("{:.1}", x.demand),
                if x.draining {
                    "drain".into()
                } else {
                    yes_no(x.alive).into()
                },
                (x.granted - x.released).to_string(),
            ]);
        }
        out.push_str(&t.render(wide));
    }
    out
}

/// Each product's terms and violations, then the overall verdict; wide adds the four
/// counters the terms are made of (`G`, `g`, `rel`, `R`).
pub(crate) fn audit(a: &AuditReport, wide: bool) -> String {
    let mut out = String::new();
    for p in &a.products {
        let _ = writeln!(
            out,
            "product {}: total {} = pool {} + Σ(sold + available + in transit)  [sold {}]  {}",
            p.product_id,
            p.total,
            p.pool,
            p.sold,
            if p.ok { "OK" } else { "FAILED" }
        );
        let mut t = Table::new(&[
            ("REGION", Left),
            ("SOLD", Right),
            ("AVAILABLE", Right),
            ("G-g", Right),
            ("rel-R", Right),
            ("ORDERS", Right),
            ("UNITS", Right),
            ("REDIS", Right),
            ("DRIFT", Right),
        ])
        .wide(&[("G", Right), ("g", Right), ("rel", Right), ("R", Right)])
        .indent(2);
        for (r, x) in &p.regions {
            t.row(vec![
                r.clone(),
                x.sold.to_string(),
                x.available.to_string(),
                x.grant_in_transit.to_string(),
                x.release_in_transit.to_string(),
                x.order_count.to_string(),
                x.order_units.to_string(),
                opt(x.redis_stock),
                opt(x.redis_drift),
                x.granted.to_string(),
                x.applied.to_string(),
                x.released.to_string(),
                x.released_published.to_string(),
            ]);
        }
        out.push_str(&t.render(wide));
        for v in &p.violations {
            let _ = writeln!(out, "  VIOLATION: {v}");
        }
        for u in &p.unreadable {
            let _ = writeln!(out, "  UNREADABLE: {u}");
        }
    }
    let _ = writeln!(
        out,
        "audit: {}",
        if a.ok {
            "ok"
        } else if !a.unreadable.is_empty() {
            "incomplete (a region could not be read)"
        } else {
            "FAILED"
        }
    );
    out
}

/// Prints `v` as `format` asks: pretty JSON, or the text `human` renders (told whether to
/// show the wide columns).
pub(crate) fn emit<T: serde::Serialize>(
    format: Format,
    v: &T,
    human: impl FnOnce(&T, bool) -> String,
) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v).expect("serialisable")),
        Format::Yaml => print!("{}", yaml(v)),
        Format::Table | Format::Wide => print!("{}", human(v, format == Format::Wide)),
    }
}

/// `v` as a YAML document (the JSON's fields, names and values; one `---` leads each document,
/// so that `status --watch -o yaml` prints a stream a YAML reader splits).
pub(crate) fn yaml<T: serde::Serialize>(v: &T) -> String {
    format!(
        "---\n{}",
        serde_yaml_ng::to_string(v).expect("serialisable")
    )
}

/// One frame of `status --watch`: a clear-screen first on a terminal (`clear`, else a blank
/// line between frames), the time and how to stop, then the status table — or, while no
/// answer comes, why.
pub(crate) fn watch_frame(answer: Result<&StatusView, &str>, wide: bool, clear: bool) -> String {
    let mut out = String::from(if clear { "\x1b[H\x1b[2J" } else { "\n" });
    let _ = writeln!(
        out,
        "{}  every 0.5 s, Ctrl-C to stop",
        chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    match answer {
        Ok(view) => out.push_str(&status(view, wide)),
        Err(why) => {
            let _ = writeln!(out, "no answer: {why} (trying again)");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each column of `line` starts and ends, given the header's column starts.
    fn starts(header: &str) -> Vec<usize> {
        let b = header.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] != b' ' && (i == 0 || (i >= GAP && b[i - GAP..i] == *b"  ")))
            .collect()
    }

    #[test]
    fn columns_fit_the_longest_cell_and_nothing_is_cut() {
        let long = "an unusually long product name that no fixed column would hold";
        let mut t = Table::new(&[("ID", Right), ("NAME", Left), ("TOTAL", Right)]);
        t.row(vec!["1001".into(), "phone".into(), "10".into()]);
        t.row(vec!["7".into(), long.into(), "123456".into()]);
        let text = t.render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            format!("  ID  NAME{}   TOTAL", " ".repeat(long.len() - 4))
        );
        assert!(lines[2].contains(long), "not cut: {text}");
        // Right-aligned numbers end where their header ends, in every row.
        let end = lines[0].len();
        for l in &lines {
            assert_eq!(l.len(), end, "{text}");
        }
        assert!(lines[1].ends_with("      10"));
        // The name column starts at one place in every row.
        let at = lines[0].find("NAME").unwrap();
        assert_eq!(&lines[1][at..at + 5], "phone");
        assert_eq!(&lines[2][at..at + long.len()], long);
    }

    #[test]
    fn wide_columns_show_only_when_asked_and_no_line_ends_in_blanks() {
        let mut t = Table::new(&[("REGION", Left), ("ALIVE", Left)])
            .wide(&[("URL", Left)])
            .indent(2);
        t.row(vec![
            "east".into(),
            "yes".into(),
            "http://127.0.0.1:1".into(),
        ]);
        t.row(vec!["a-much-longer-region".into(), "no".into()]);
        let narrow = t.render(false);
        assert!(
            !narrow.contains("URL") && !narrow.contains("http"),
            "{narrow}"
        );
        let wide = t.render(true);
        assert!(
            wide.contains("URL") && wide.contains("http://127.0.0.1:1"),
            "{wide}"
        );
        for text in [&narrow, &wide] {
            for l in text.lines() {
                assert!(l.starts_with("  ") && !l.ends_with(' '), "{l:?}");
            }
            let cols = starts(text.lines().next().unwrap());
            for l in text.lines().skip(1) {
                for &c in &cols {
                    assert!(
                        c == 0 || l.len() <= c || l.as_bytes()[c - 1] == b' ',
                        "column at {c} misaligned in {l:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn regions_and_products_use_the_table_with_wide_extras() {
        let rs = vec![RegionView {
            region: "east".into(),
            url: "http://127.0.0.1:9".into(),
            alive: true,
            processes: 2,
            last_report_ms: Some(120),
        }];
        let narrow = regions(&rs, false);
        assert_eq!(
            narrow,
            "REGION  ALIVE  PROCESSES\neast    yes            2\n"
        );
        let wide = regions(&rs, true);
        assert!(
            wide.contains("REPORT AGE") && wide.contains("120 ms") && wide.contains("URL"),
            "{wide}"
        );
        assert!(products(&[], false).starts_with("ID  NAME  TOTAL  POOL  POLICY\n"));
        assert!(products(&[], true).contains("HOME REGIONS"));
    }

    #[test]
    fn a_watch_frame_clears_only_on_a_terminal_and_says_why_a_frame_is_empty() {
        let view = StatusView {
            leader: Some("coordinator-1".into()),
            products: Vec::new(),
        };
        let tty = watch_frame(Ok(&view), false, true);
        assert!(tty.starts_with("\x1b[H\x1b[2J"), "{tty:?}");
        assert!(tty.contains("Ctrl-C") && tty.ends_with(&status(&view, false)));
        let piped = watch_frame(Ok(&view), true, false);
        assert!(
            piped.starts_with('\n') && !piped.contains('\x1b'),
            "{piped:?}"
        );
        let down = watch_frame(Err("cannot reach the coordinator"), false, false);
        assert!(
            down.contains("no answer: cannot reach the coordinator"),
            "{down}"
        );
    }
}
