//! The speed/quality frontier PNG of a sweep: one dot per setting at (speedup vs big-only,
//! agreement with big-only greedy output), the Pareto frontier (no other setting both faster and
//! closer to the big model) as a blue line, and grey guides at speedup 1 and agreement 1.
//! Like the loss curves (`seqlab_train::plot`), the picture has no text (plotters' text
//! needs system fonts); the numbers are in the JSON and the markdown table. The x axis spans
//! 0..max(2, largest speedup·1.1), the y axis 0..1.05.

use crate::error::{Result, SpecError};
use crate::harness::SweepRow;
use plotters::prelude::*;

/// Width and height of the PNG.
pub const FRONTIER_SIZE: (u32, u32) = (640, 480);

/// The settings on the Pareto frontier, by increasing speedup.
pub fn pareto(rows: &[SweepRow]) -> Vec<&SweepRow> {
    let mut front: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| {
            !rows.iter().any(|o| {
                o.speedup >= r.speedup
                    && o.agreement >= r.agreement
                    && (o.speedup > r.speedup || o.agreement > r.agreement)
            })
        })
        .collect();
    front.sort_by(|a, b| a.speedup.total_cmp(&b.speedup));
    front
}

/// Renders the frontier as PNG bytes.
pub fn frontier_png(rows: &[SweepRow]) -> Result<Vec<u8>> {
    let err = |e: String| SpecError::Plot(e);
    let (w, h) = FRONTIER_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let max_x = rows
            .iter()
            .map(|r| r.speedup)
            .filter(|v| v.is_finite())
            .fold(2.0f64 / 1.1, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0f64..max_x, 0f64..1.05)
            .map_err(|e| err(e.to_string()))?;
        let grey = RGBColor(200, 200, 200);
        for line in [[(1.0, 0.0), (1.0, 1.05)], [(0.0, 1.0), (max_x, 1.0)]] {
            chart
                .draw_series(LineSeries::new(line, grey))
                .map_err(|e| err(e.to_string()))?;
        }
        for line in [[(0.0, 0.0), (max_x, 0.0)], [(0.0, 0.0), (0.0, 1.05)]] {
            chart
                .draw_series(LineSeries::new(line, BLACK))
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .draw_series(LineSeries::new(
                pareto(rows).into_iter().map(|r| (r.speedup, r.agreement)),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                rows.iter()
                    .filter(|r| r.speedup.is_finite() && r.agreement.is_finite())
                    .map(|r| Circle::new((r.speedup, r.agreement), 4, RED.filled())),
            )
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    seqlab_train::plot::encode_png_rgb(&buf, w, h).map_err(SpecError::Plot)
}
