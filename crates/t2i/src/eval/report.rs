//! The evaluation report of a run: `eval.json` and a self-contained HTML
//! page (no JavaScript) with the metric table, line plots (SVG, drawn with
//! plotters) of the training curves from `metrics.jsonl` and of metrics
//! against the training step, and sample grids per caption.

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Numeric columns of a `metrics.jsonl`: name -> (step, value) points.
pub fn read_metrics_jsonl(path: &Path) -> Result<BTreeMap<String, Vec<(f64, f64)>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::Config(format!("{} line {}: {e}", path.display(), i + 1)))?;
        let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
            continue;
        };
        if let Some(obj) = v.as_object() {
            for (k, x) in obj {
                if k == "step" {
                    continue;
                }
                if let Some(x) = x.as_f64().filter(|x| x.is_finite()) {
                    out.entry(k.clone()).or_default().push((step, x));
                }
            }
        }
    }
    Ok(out)
}

/// One line plot: several named series over a shared x axis.
#[derive(Debug, Clone)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

impl Plot {
    /// The plot as an SVG document (`width` x `height` pixels).
    pub fn svg(&self, width: u32, height: u32) -> Result<String> {
        let pts = self.series.iter().flat_map(|(_, p)| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let (y0, y1) = (y0 - pad, y1 + pad);
        let mut svg = String::new();
        {
            let err = |e: &dyn std::fmt::Display| Error::Image(format!("plot {}: {e}", self.title));
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| err(&e))?;
            let int_x = |x: &f64| format!("{}", x.round() as i64);
            let general = |x: &f64| format!("{x}");
            let x_fmt: &dyn Fn(&f64) -> String = if x1 - x0 >= 10.0 { &int_x } else { &general };
            chart
                .configure_mesh()
                .x_label_formatter(x_fmt)
                .x_desc(self.x_label.as_str())
                .y_desc(self.y_label.as_str())
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, (name, p)) in self.series.iter().enumerate() {
                let c = COLOURS[i % COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(p.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
            }
            if self.series.len() > 1 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(&e))?;
            }
            root.present().map_err(|e| err(&e))?;
        }
        Ok(svg)
    }
}

/// Moving average over `k` points (training losses are noisy).
pub fn smooth(p: &[(f64, f64)], k: usize) -> Vec<(f64, f64)> {
    let k = k.max(1);
    p.iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let lo = i.saturating_sub(k - 1);
            let w = &p[lo..=i];
            (x, w.iter().map(|q| q.1).sum::<f64>() / w.len() as f64)
        })
        .collect()
}

/// Everything a report page shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub title: String,
    /// Lines under the title (run folder, checkpoint, command, protocol).
    pub notes: Vec<String>,
    /// (metric, value, how it was measured)
    pub table: Vec<(String, String, String)>,
    pub plots: Vec<Plot>,
    /// (caption, image file relative to the page)
    pub images: Vec<(String, String)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Report {
    /// The HTML page (plots inline as SVG, images by relative path).
    pub fn html(&self) -> Result<String> {
        let mut h = String::new();
        h.push_str("<!doctype html><html><head><meta charset=\"utf-8\">");
        h.push_str(&format!("<title>{}</title>", esc(&self.title)));
        h.push_str(
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
             table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
             .plots{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0 0 1em 0}\
             figcaption{font-size:90%;color:#444}.note{color:#555;font-size:90%}</style></head><body>",
        );
        h.push_str(&format!("<h1>{}</h1>", esc(&self.title)));
        for n in &self.notes {
            h.push_str(&format!("<p class=\"note\">{}</p>", esc(n)));
        }
        if !self.table.is_empty() {
            h.push_str(
                "<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>protocol</th></tr>",
            );
            for (m, v, p) in &self.table {
                h.push_str(&format!(
                    "<tr><td>{}</td><td><b>{}</b></td><td>{}</td></tr>",
                    esc(m),
                    esc(v),
                    esc(p)
                ));
            }
            h.push_str("</table>");
        }
        if !self.plots.is_empty() {
            h.push_str("<h2>Curves</h2><div class=\"plots\">");
            for p in &self.plots {
                h.push_str(&format!("<div>{}</div>", p.svg(520, 300)?));
            }
            h.push_str("</div>");
        }
        if !self.images.is_empty() {
            h.push_str("<h2>Samples</h2>");
            for (cap, file) in &self.images {
                h.push_str(&format!(
                    "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                    esc(file),
                    esc(cap),
                    esc(cap)
                ));
            }
        }
        h.push_str("</body></html>\n");
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_plots_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        std::fs::write(
            &p,
            "{\"step\":1,\"loss_d\":1.5,\"note\":\"x\"}\n{\"step\":2,\"loss_d\":1.0,\"loss_g\":2.0}\n",
        )
        .unwrap();
        let m = read_metrics_jsonl(&p).unwrap();
        assert_eq!(m["loss_d"], vec![(1.0, 1.5), (2.0, 1.0)]);
        assert_eq!(m["loss_g"], vec![(2.0, 2.0)]);
        assert!(!m.contains_key("note"));
        assert_eq!(smooth(&m["loss_d"], 2), vec![(1.0, 1.5), (2.0, 1.25)]);
        let plot = Plot {
            title: "losses".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![
                ("D".into(), m["loss_d"].clone()),
                ("G".into(), m["loss_g"].clone()),
            ],
        };
        let svg = plot.svg(400, 300).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
        let r = Report {
            title: "a <run>".into(),
            notes: vec!["n".into()],
            table: vec![("FID".into(), "1.0".into(), "p".into())],
            plots: vec![plot],
            images: vec![("red circle".into(), "g.png".into())],
        };
        let h = r.html().unwrap();
        assert!(h.contains("a &lt;run&gt;") && h.contains("<img src=\"g.png\""));
        std::fs::write(dir.path().join("bad.jsonl"), "{\"step\":1}\nnot json\n").unwrap();
        let e = read_metrics_jsonl(&dir.path().join("bad.jsonl")).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
