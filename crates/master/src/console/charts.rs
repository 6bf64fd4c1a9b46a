//! Charts drawn on the server as SVG: no script, nothing but this origin's stylesheet
//! (classes, no inline style), so they pass the console's Content-Security-Policy.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

/// One value of a chart and what its axis says under it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub(crate) label: String,
    pub(crate) value: f64,
}

/// Bars, one per point (months of an estimate).
pub(crate) fn bars(points: &[Point], unit: &str, title: &str) -> String {
    let mut svg = open(title);
    let top = scale(points);
    axis(&mut svg, top, unit);
    let slot = (WIDTH - LEFT) / points.len().max(1) as f64;
    for (i, p) in points.iter().enumerate() {
        let h = bar_height(p.value, top);
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{} {}</title></rect>"#,
            HEIGHT - BOTTOM - h,
            slot * 0.7,
            escape(&p.label),
            escape(&format!("{} {unit}", number(p.value))),
        );
        label(&mut svg, x + slot * 0.35, &p.label, i, points.len());
    }
    svg.push_str("</svg>");
    svg
}

/// A line through the points (usage over time).
pub(crate) fn line(points: &[Point], unit: &str, title: &str) -> String {
    let mut svg = open(title);
    let top = scale(points);
    axis(&mut svg, top, unit);
    let step = (WIDTH - LEFT) / (points.len().max(2) - 1) as f64;
    let mut path = String::new();
    for (i, p) in points.iter().enumerate() {
        let x = LEFT + step * i as f64;
        let y = HEIGHT - BOTTOM - bar_height(p.value, top);
        let _ = write!(path, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
        label(&mut svg, x, &p.label, i, points.len());
    }
    if !path.is_empty() {
        let _ = write!(svg, r#"<path class="line" d="{}"/>"#, path.trim_end());
    }
    svg.push_str("</svg>");
    svg
}

fn open(title: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{0}" xmlns="http://www.w3.org/2000/svg"><title>{0}</title>"#,
        escape(title)
    )
}

/// The top of the axis: the largest value, at least something above zero.
fn scale(points: &[Point]) -> f64 {
    let max = points
        .iter()
        .map(|p| p.value)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    if max > 0.0 { max } else { 1.0 }
}

fn bar_height(value: f64, top: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        (value / top).min(1.0) * (HEIGHT - BOTTOM - TOP)
    } else {
        0.0
    }
}

fn axis(svg: &mut String, top: f64, unit: &str) {
    let base = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text><text class="tick" x="{}" y="{base}" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        TOP + 8.0,
        escape(&format!("{} {unit}", number(top))),
        LEFT - 4.0,
    );
}

/// Labels under the axis, at most about eight of them.
fn label(svg: &mut String, x: f64, text: &str, i: usize, count: usize) {
    let every = count.div_ceil(8).max(1);
    if i.is_multiple_of(every) {
        let _ = write!(
            svg,
            r#"<text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            HEIGHT - 6.0,
            escape(text)
        );
    }
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Text made safe inside SVG or HTML drawn by hand (text and attribute values).
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(&str, f64)]) -> Vec<Point> {
        values
            .iter()
            .map(|(label, value)| Point {
                label: (*label).to_owned(),
                value: *value,
            })
            .collect()
    }

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bars(&points(&[("2026-10", 5.0), ("<b>", 10.0)]), "EUR", "cost");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(
            svg.contains("height=\"144.0\""),
            "the largest bar fills the height: {svg}"
        );
        assert!(svg.contains("height=\"72.0\""), "half of it: {svg}");
        assert!(
            !svg.contains("style="),
            "no inline style: the CSP forbids it"
        );
    }

    #[test]
    fn lines_survive_nothing_and_nonsense() {
        for values in [
            vec![],
            vec![("a", f64::NAN)],
            vec![("a", -1.0), ("b", f64::INFINITY)],
        ] {
            let svg = line(&points(&values), "s", "cpu");
            assert!(svg.ends_with("</svg>"), "{svg}");
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
        let svg = line(&points(&[("a", 0.0), ("b", 2.0)]), "s", "cpu");
        assert!(svg.contains("M56.0,156.0 L640.0,12.0"), "{svg}");
    }
}
