package org.tfedge.core;

/**
 * The refiner's second look, bit for bit as {@code tfedge.runtime.refine} computes it:
 * the window around the current box ({@link Geometry#cropWindow} with the refiner's own
 * square config), the window as a normalised box (float32 division by the frame's size), the
 * refiner's box mapped back ({@code clip(inner * side + origin, 0, 1)} in float32), and the
 * merge: along an axis where the window is narrower than the previous box (by more than
 * {@link #MERGE_TOLERANCE}, in float32) the previous box's edges stand.
 */
public final class Refine {
    /** {@code np.float32(1e-6)}: the merge's slack. */
    public static final float MERGE_TOLERANCE = 1e-6f;

    private Refine() {
    }

    /** The pixel window {@code (y0, x0, y1, x1)} the refiner sees around {@code box}. */
    public static int[] window(float[] box, int height, int width, CropConfig config) {
        return Geometry.cropWindow(box, height, width, config);
    }

    /** A pixel window as a normalised float32 box of the frame. */
    public static float[] fraction(int[] window, int height, int width) {
        float h = height;
        float w = width;
        return new float[] {(float) window[0] / h, (float) window[1] / w, (float) window[2] / h,
            (float) window[3] / w};
    }

    private static float clip01(float v) {
        // np.clip(v, 0, 1): NaN stays NaN.
        return Float.isNaN(v) ? v : Math.min(Math.max(v, 0f), 1f);
    }

    /** A box in normalised window coordinates -> a normalised frame box. */
    public static float[] fromWindow(float[] inner, float[] fraction) {
        float sideY = fraction[2] - fraction[0];
        float sideX = fraction[3] - fraction[1];
        float[] side = {sideY, sideX, sideY, sideX};
        float[] origin = {fraction[0], fraction[1], fraction[0], fraction[1]};
        float[] out = new float[4];
        for (int i = 0; i < 4; i++) {
            float scaled = inner[i] * side[i]; // two float32 roundings, as numpy: no fused multiply-add
            out[i] = clip01(scaled + origin[i]);
        }
        return out;
    }

    /** The refined box, except along an axis where the window is narrower than {@code previous}. */
    public static float[] merge(float[] previous, float[] refined, float[] fraction) {
        float[] out = refined.clone();
        for (int lo = 0; lo < 2; lo++) {
            int hi = lo + 2;
            if (fraction[hi] - fraction[lo] < (previous[hi] - previous[lo]) - MERGE_TOLERANCE) {
                out[lo] = previous[lo];
                out[hi] = previous[hi];
            }
        }
        return out;
    }

    /** One pass: the refiner's {@code inner} box, seen in {@code window}, as the new frame box. */
    public static float[] step(float[] box, float[] inner, int[] window, int height, int width) {
        float[] f = fraction(window, height, width);
        return merge(box, fromWindow(inner, f), f);
    }
}
