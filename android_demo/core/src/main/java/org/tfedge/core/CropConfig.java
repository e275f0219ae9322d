package org.tfedge.core;

import java.util.Arrays;

import org.json.JSONArray;
import org.json.JSONObject;

/**
 * How a predicted box becomes the crop window: the fields of Python's
 * {@code tfedge.crop.geometry.CropConfig}, with its defaults and its checks.
 */
public final class CropConfig {
    public static final double DEFAULT_MARGIN = 0.15;
    public static final double DEFAULT_MIN_SIZE = 0.2;
    public static final double MAX_MARGIN = 4.0;
    /** The keys a manifest's {@code predictor.crop} may hold. */
    public static final String[] KEYS = {"margin", "square", "min_size", "scales"};

    public final double margin;
    public final boolean square;
    public final double minSize;
    private final double[] scales;

    public CropConfig(double margin, boolean square, double minSize, double[] scales) {
        this.margin = margin;
        this.square = square;
        this.minSize = minSize;
        this.scales = scales.clone();
    }

    public double[] scales() {
        return scales.clone();
    }

    /**
     * A config from a manifest's {@code predictor.crop} object (missing keys take the
     * defaults); an invalid value throws {@link IllegalArgumentException} worded as Python's.
     */
    public static CropConfig fromJson(JSONObject o) {
        Object margin = o.has("margin") ? o.opt("margin") : DEFAULT_MARGIN;
        Object square = o.has("square") ? o.opt("square") : Boolean.TRUE;
        Object minSize = o.has("min_size") ? o.opt("min_size") : DEFAULT_MIN_SIZE;
        Object scales = o.has("scales") ? o.opt("scales") : new JSONArray();
        if (!isReal(margin) || !(((Number) margin).doubleValue() >= 0.0
                && ((Number) margin).doubleValue() <= MAX_MARGIN)) {
            throw new IllegalArgumentException("crop margin must be a number in [0, 4.0], got "
                    + Py.value(margin) + ": e.g. 0.15 adds 15% on each side");
        }
        if (!(square instanceof Boolean)) {
            throw new IllegalArgumentException("crop square must be True or False, got "
                    + Py.value(square));
        }
        if (!isReal(minSize) || !(((Number) minSize).doubleValue() > 0.0
                && ((Number) minSize).doubleValue() <= 1.0)) {
            throw new IllegalArgumentException("crop min_size must be a fraction in (0, 1] of the "
                    + "image's short side, got " + Py.value(minSize) + ": e.g. 0.2");
        }
        if (!(scales instanceof JSONArray)) {
            throw new IllegalArgumentException("crop scales must be a sequence of fractions, got "
                    + Py.value(scales) + ": e.g. (0.25, 0.5, 1.0)");
        }
        JSONArray a = (JSONArray) scales;
        double[] values = new double[a.length()];
        boolean ok = true;
        StringBuilder tuple = new StringBuilder("(");
        for (int i = 0; i < values.length; i++) {
            Object v = a.opt(i);
            if (!(v instanceof Number) || v instanceof Boolean) {
                throw new IllegalArgumentException("crop scales must be a sequence of fractions, "
                        + "got " + Py.value(a) + ": e.g. (0.25, 0.5, 1.0)");
            }
            values[i] = ((Number) v).doubleValue();
            ok &= values[i] > 0.0 && values[i] <= 1.0 && (i == 0 || values[i] > values[i - 1]);
            tuple.append(i == 0 ? "" : ", ").append(Py.value(v));
        }
        tuple.append(values.length == 1 ? ",)" : ")");
        if (!ok) {
            throw new IllegalArgumentException("crop scales must be increasing fractions in (0, 1] "
                    + "of the image's short side, got " + tuple + ": e.g. (0.25, 0.5, 1.0)");
        }
        return new CropConfig(((Number) margin).doubleValue(), (Boolean) square,
                ((Number) minSize).doubleValue(), values);
    }

    private static boolean isReal(Object v) {
        return v instanceof Number && !(v instanceof Boolean)
                && !Double.isNaN(((Number) v).doubleValue())
                && !Double.isInfinite(((Number) v).doubleValue());
    }

    @Override
    public String toString() {
        return "CropConfig(margin=" + margin + ", square=" + square + ", min_size=" + minSize
                + ", scales=" + Arrays.toString(scales) + ")";
    }
}
