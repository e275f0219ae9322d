package org.tfedge.core;

import java.util.Arrays;

/**
 * One tensor of a model: {@code real = scale * (q - zeroPoint)}. A float tensor has scale 0
 * and zero point 0 (TFLite's convention).
 */
public final class TensorSpec {
    public final int[] shape;
    public final DType dtype;
    public final double scale;
    public final int zeroPoint;

    public TensorSpec(int[] shape, DType dtype, double scale, int zeroPoint) {
        this.shape = shape.clone();
        this.dtype = dtype;
        this.scale = scale;
        this.zeroPoint = zeroPoint;
    }

    /** Quantised: an integer tensor with a positive scale. */
    public boolean isQuantized() {
        return dtype.isInteger() && scale > 0;
    }

    public int elementCount() {
        int n = 1;
        for (int s : shape) {
            n *= s;
        }
        return n;
    }

    public int byteCount() {
        return elementCount() * dtype.bytes;
    }

    /** The shape as Python prints a list: {@code [1, 16, 16, 3]}. */
    public String shapeText() {
        return Py.list(shape);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof TensorSpec)) {
            return false;
        }
        TensorSpec t = (TensorSpec) o;
        return Arrays.equals(shape, t.shape) && dtype == t.dtype
                && Double.compare(scale, t.scale) == 0 && zeroPoint == t.zeroPoint;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(shape) * 31 + dtype.hashCode();
    }

    @Override
    public String toString() {
        return "TensorSpec(" + shapeText() + ", " + dtype.jsonName + ", scale=" + scale
                + ", zero_point=" + zeroPoint + ")";
    }

    /**
     * The first difference between what a manifest lists and what a model has, as one line,
     * or null when they agree (Python's {@code tfedge.bundle.spec_difference}: shape, dtype,
     * scale within a relative 1e-6, zero point).
     */
    public static String difference(TensorSpec[] expected, TensorSpec[] actual, String what) {
        if (expected.length != actual.length) {
            return what + ": the model has " + actual.length + " tensors, the manifest lists "
                    + expected.length;
        }
        for (int i = 0; i < expected.length; i++) {
            TensorSpec e = expected[i];
            TensorSpec a = actual[i];
            String name = expected.length == 1 ? what : what + " " + i;
            if (!Arrays.equals(e.shape, a.shape)) {
                return name + " shape is " + a.shapeText() + " but the manifest says "
                        + e.shapeText();
            }
            if (e.dtype != a.dtype) {
                return name + " dtype is " + a.dtype.jsonName + " but the manifest says "
                        + e.dtype.jsonName;
            }
            // math.isclose(e, a, rel_tol=1e-6, abs_tol=0)
            double tolerance = 1e-6 * Math.max(Math.abs(e.scale), Math.abs(a.scale));
            if (!(e.scale == a.scale || Math.abs(e.scale - a.scale) <= tolerance)) {
                return name + " scale is " + Py.number(a.scale) + " but the manifest says "
                        + Py.number(e.scale);
            }
            if (e.zeroPoint != a.zeroPoint) {
                return name + " zero point is " + a.zeroPoint + " but the manifest says "
                        + e.zeroPoint;
            }
        }
        return null;
    }
}
