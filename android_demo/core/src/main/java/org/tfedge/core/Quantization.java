package org.tfedge.core;

/**
 * Integer tensors and real values, always with the tensor's own parameters:
 * {@code real = scale * (q - zeroPoint)} and {@code q = clip(round(real / scale) + zeroPoint)},
 * rounding half away from zero as TFLite does ({@code tfedge.litert.quantize/dequantize}).
 * Tensor buffers are little-endian, as LiteRT's are on Android devices.
 */
public final class Quantization {
    private Quantization() {
    }

    /** Round half away from zero ({@code sign(x) * floor(|x| + 0.5)}). */
    static double roundHalfAway(double x) {
        return Math.signum(x) * Math.floor(Math.abs(x) + 0.5);
    }

    /** One real value -> the code of an integer tensor, clipped to its type's range. */
    public static int quantize(double real, double scale, int zeroPoint, DType dtype) {
        if (!dtype.isInteger()) {
            throw new IllegalArgumentException("cannot quantise to " + dtype.jsonName
                    + ": it is a float type");
        }
        if (!(scale > 0) || Double.isInfinite(scale)) {
            throw new IllegalArgumentException("quantisation scale must be a positive number, got "
                    + scale + ": the tensor is not quantised");
        }
        double q = roundHalfAway(real / scale) + zeroPoint;
        return (int) Math.max(dtype.min, Math.min(dtype.max, q));
    }

    /** One code -> its real value as float32 ({@code scale * (q - zeroPoint)} in double). */
    public static float dequantize(int code, double scale, int zeroPoint) {
        if (scale == 0) {
            return (float) code;
        }
        return (float) (scale * ((double) code - zeroPoint));
    }

    /** The element {@code i} of a tensor buffer as an integer code (or a float's bits unused). */
    public static int code(byte[] raw, int i, DType dtype) {
        switch (dtype) {
            case INT8:
                return raw[i];
            case UINT8:
                return raw[i] & 0xff;
            case INT16:
                return (short) ((raw[2 * i] & 0xff) | (raw[2 * i + 1] << 8));
            default:
                throw new IllegalArgumentException(dtype.jsonName + " holds no integer codes");
        }
    }

    /** Every element of a tensor buffer as float32 real values (a float tensor as is). */
    public static float[] dequantize(byte[] raw, TensorSpec spec) {
        int n = raw.length / spec.dtype.bytes;
        float[] out = new float[n];
        if (spec.dtype == DType.FLOAT32) {
            for (int i = 0; i < n; i++) {
                int bits = (raw[4 * i] & 0xff) | (raw[4 * i + 1] & 0xff) << 8
                        | (raw[4 * i + 2] & 0xff) << 16 | (raw[4 * i + 3] & 0xff) << 24;
                out[i] = Float.intBitsToFloat(bits);
            }
            return out;
        }
        for (int i = 0; i < n; i++) {
            out[i] = dequantize(code(raw, i, spec.dtype), spec.scale, spec.zeroPoint);
        }
        return out;
    }

    /** Writes code {@code q} as element {@code i} of a tensor buffer of {@code dtype}. */
    public static void put(byte[] raw, int i, int q, DType dtype) {
        switch (dtype) {
            case INT8:
            case UINT8:
                raw[i] = (byte) q;
                return;
            case INT16:
                raw[2 * i] = (byte) q;
                raw[2 * i + 1] = (byte) (q >> 8);
                return;
            default:
                throw new IllegalArgumentException(dtype.jsonName + " holds no integer codes");
        }
    }

    /** Writes float32 value {@code v} as element {@code i} of a float32 tensor buffer. */
    public static void putFloat(byte[] raw, int i, float v) {
        int bits = Float.floatToRawIntBits(v);
        raw[4 * i] = (byte) bits;
        raw[4 * i + 1] = (byte) (bits >> 8);
        raw[4 * i + 2] = (byte) (bits >> 16);
        raw[4 * i + 3] = (byte) (bits >> 24);
    }

    /**
     * Float32 pixel values in [0, 255] (a bilinear resize of pixels) -> the input tensor's
     * buffer, exactly as the Python runner ({@code rpi_runner._preprocess.quantize_pixels}):
     * with scale 1 the rounding {@code floor(v + 0.5)} runs in float32, otherwise the division
     * runs in double; equal to {@link #quantize} for such values. A float input is written as is.
     */
    public static byte[] quantizePixels(float[] values, TensorSpec spec) {
        byte[] raw = new byte[values.length * spec.dtype.bytes];
        if (!spec.isQuantized()) {
            if (spec.dtype != DType.FLOAT32) {
                throw new IllegalArgumentException("cannot feed a " + spec.dtype.jsonName
                        + " input tensor with scale 0: rebuild the bundle with tfedge-convert");
            }
            for (int i = 0; i < values.length; i++) {
                putFloat(raw, i, values[i]);
            }
            return raw;
        }
        DType t = spec.dtype;
        for (int i = 0; i < values.length; i++) {
            double q;
            if (spec.scale == 1.0) {
                q = (float) Math.floor(values[i] + 0.5f);
            } else {
                q = Math.floor((double) values[i] / spec.scale + 0.5);
            }
            q += spec.zeroPoint;
            put(raw, i, (int) Math.max(t.min, Math.min(t.max, q)), t);
        }
        return raw;
    }
}
