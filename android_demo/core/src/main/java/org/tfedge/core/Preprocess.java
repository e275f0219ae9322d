package org.tfedge.core;

/**
 * Frame pixels -> model input, as the Python runner prepares it
 * ({@code rpi_runner._preprocess.prepare_input}): the window of the frame resized to the
 * model's input with half-pixel bilinear sampling in float32 ({@link Geometry#resize}), then
 * quantised with the input tensor's own parameters ({@link Quantization#quantizePixels}).
 */
public final class Preprocess {
    private Preprocess() {
    }

    /**
     * The input buffer of a model whose input is {@code spec} ({@code [1, h, w, 3]}) for the
     * {@code window} (y0, x0, y1, x1) of an ARGB frame ({@code width} pixels a row; Android's
     * {@code Bitmap.getPixels} layout).
     */
    public static byte[] prepareInput(int[] argb, int width, int height, int[] window,
                                      TensorSpec spec) {
        if (spec.shape.length != 4 || spec.shape[0] != 1 || spec.shape[3] != 3) {
            throw new IllegalArgumentException("an image input is [1, h, w, 3], got "
                    + spec.shapeText());
        }
        float[] values = Geometry.resize(argb, width, height, window, spec.shape[1], spec.shape[2]);
        return Quantization.quantizePixels(values, spec);
    }

    /** Packs RGB bytes (row-major, 3 a pixel) into opaque ARGB ints. */
    public static int[] argbFromRgb(byte[] rgb, int width, int height) {
        int[] argb = new int[width * height];
        for (int i = 0; i < argb.length; i++) {
            argb[i] = 0xff000000 | (rgb[3 * i] & 0xff) << 16 | (rgb[3 * i + 1] & 0xff) << 8
                    | (rgb[3 * i + 2] & 0xff);
        }
        return argb;
    }
}
