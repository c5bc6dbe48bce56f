//! GAWWN control metrics (box IoU, keypoint error) read by the shapes
//! checker: near-perfect on real renders, and they fall when the drawn object
//! is moved or resized.

use t2i::data::checker::check;
use t2i::data::shapes::{render, Shapes, ShapesConfig, Split};
use t2i::eval::shapes::control;

#[test]
fn control_metrics_on_real_and_moved_renders() {
    for size in [32u32, 64] {
        let shapes = Shapes::new(ShapesConfig {
            image_size: size,
            max_objects: 2,
            ..Default::default()
        })
        .unwrap();
        let (mut iou, mut kp, mut n) = (0f32, 0f32, 0usize);
        let (mut iou_moved, mut kp_moved) = (0f32, 0f32);
        for i in 0..100 {
            let s = shapes.sample(Split::Test, i);
            for c in control(&s.objects, &check(&s.pixels, size, 2), size) {
                iou += c.iou;
                kp += c.keypoint_error.expect("found");
                n += 1;
            }
            // the same scene drawn with every object shifted by a quarter of
            // its side and shrunk by a fifth
            let moved: Vec<_> = s
                .objects
                .iter()
                .map(|o| t2i::data::shapes::ShapeObject {
                    cx: o.cx + o.r / 2.0,
                    r: o.r * 0.8,
                    ..*o
                })
                .collect();
            let px = render(size, &moved, s.background, s.gradient);
            for c in control(&s.objects, &check(&px, size, 2), size) {
                iou_moved += c.iou;
                kp_moved += c.keypoint_error.unwrap_or(1.0);
            }
        }
        let n = n as f32;
        let (iou, kp, iou_moved, kp_moved) = (iou / n, kp / n, iou_moved / n, kp_moved / n);
        assert!(iou > 0.85, "size {size}: real renders IoU {iou}");
        assert!(kp < 0.03, "size {size}: real renders keypoint error {kp}");
        assert!(
            iou_moved < iou - 0.2,
            "size {size}: moved IoU {iou_moved} vs {iou}"
        );
        assert!(
            kp_moved > kp + 0.02,
            "size {size}: moved keypoint error {kp_moved} vs {kp}"
        );
    }
}
