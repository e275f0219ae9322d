package org.tfedge.core;

/**
 * The predictor's dequantised outputs -> a normalised box {@code (ymin, xmin, ymax, xmax)},
 * for the three box formats of {@code docs/bundle.md} (Python: {@code rpi_runner.predictor_values}
 * and {@code rpi_runner.decode_box}).
 */
public final class Boxes {
    public static final String YXYX = "yxyx_normalized";
    public static final String CYXHW = "cyxhw_normalized";
    public static final String HEATMAP = "heatmap_cyxhw";
    /** The box formats of a version 1 bundle, in the Python reader's order. */
    public static final String[] FORMATS = {YXYX, CYXHW, HEATMAP};

    private Boxes() {
    }

    /**
     * The four box values of the predictor's outputs (each dequantised, flattened): the first
     * four values of the first output, or for {@code heatmap_cyxhw} the centre logits
     * {@code (1, N)} and cell sizes {@code (1, N, 2)} (in either order, told apart by
     * {@code ranks}) reduced in double to {@code (cy, cx, h, w)}.
     */
    public static float[] predictorValues(float[][] outputs, int[] ranks, String boxFormat)
            throws BundleException {
        if (HEATMAP.equals(boxFormat)) {
            if (outputs.length != 2) {
                throw new BundleException("a heatmap_cyxhw predictor has two outputs, got "
                        + outputs.length + ": rebuild the bundle with tfedge-convert");
            }
            boolean logitsFirst = ranks[0] <= ranks[1];
            float[] logits = logitsFirst ? outputs[0] : outputs[1];
            float[] sizes = logitsFirst ? outputs[1] : outputs[0];
            return decodeHeatmap(logits, sizes);
        }
        float[] first = outputs[0];
        if (first.length < 4) {
            throw new BundleException("the predictor's first output holds " + first.length
                    + " values, a box needs 4: rebuild the bundle with tfedge-convert");
        }
        return new float[] {first[0], first[1], first[2], first[3]};
    }

    /**
     * Heat-map outputs -> {@code (cy, cx, h, w)}: {@code p = softmax(logits)} in double over an
     * S x S grid (row-major), the centre the p-weighted mean of the cell centres
     * {@code ((i + 0.5) / S)}, the size the p-weighted mean of the cell sizes
     * ({@code tfedge.crop.geometry.decode_heatmap}).
     */
    public static float[] decodeHeatmap(float[] logits, float[] sizes) throws BundleException {
        int cells = logits.length;
        int side = (int) Math.round(Math.sqrt(cells));
        if (side * side != cells || cells == 0) {
            throw new BundleException("a heat map must have a square number of cells, got "
                    + cells + ": rebuild the bundle with tfedge-convert");
        }
        if (sizes.length != 2 * cells) {
            throw new BundleException("heat maps must be logits (1, N) and sizes (1, N, 2), got "
                    + cells + " logits and " + sizes.length + " sizes: rebuild the bundle with "
                    + "tfedge-convert");
        }
        // prob = exp(lg - max(lg)); prob /= prob.sum(), as decode_heatmap writes it.
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double[] p = new double[cells];
        for (int i = 0; i < cells; i++) {
            p[i] = Math.exp((double) logits[i] - max);
        }
        double total = Decision.sum(p);
        for (int i = 0; i < cells; i++) {
            p[i] = p[i] / total;
        }
        double cy = 0;
        double cx = 0;
        double h = 0;
        double w = 0;
        for (int i = 0; i < cells; i++) {
            double centreY = ((double) (i / side) + 0.5) / side;
            double centreX = ((double) (i % side) + 0.5) / side;
            cy += p[i] * centreY;
            cx += p[i] * centreX;
            h += p[i] * (double) sizes[2 * i];
            w += p[i] * (double) sizes[2 * i + 1];
        }
        return new float[] {(float) cy, (float) cx, (float) h, (float) w};
    }

    /** Four box values -> a float32 box clipped to [0, 1] (max edge exclusive). */
    public static float[] decodeBox(float[] values, String boxFormat) throws BundleException {
        if (values.length < 4) {
            throw new BundleException("the predictor's first output holds " + values.length
                    + " values, a box needs 4: rebuild the bundle with tfedge-convert");
        }
        if (YXYX.equals(boxFormat)) {
            return new float[] {clip(values[0]), clip(values[1]), clip(values[2]),
                    clip(values[3])};
        }
        if (CYXHW.equals(boxFormat) || HEATMAP.equals(boxFormat)) {
            double cy = values[0];
            double cx = values[1];
            double halfH = Math.max(values[2], 0.0) * 0.5;
            double halfW = Math.max(values[3], 0.0) * 0.5;
            return new float[] {clip((float) (cy - halfH)), clip((float) (cx - halfW)),
                    clip((float) (cy + halfH)), clip((float) (cx + halfW))};
        }
        throw new BundleException("unknown predictor box_format " + Py.str(boxFormat)
                + ": expected one of yxyx_normalized, cyxhw_normalized, heatmap_cyxhw; "
                + "upgrade the app");
    }

    private static float clip(float v) {
        return Math.max(0f, Math.min(1f, v));
    }
}
