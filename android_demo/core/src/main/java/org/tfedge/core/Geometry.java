package org.tfedge.core;

/**
 * Crop windows and bilinear resizing, bit for bit as the Python side computes them.
 *
 * <p>{@link #cropWindow} repeats {@code tfedge.crop.geometry.crop_window_with}'s float32
 * operations in the same order (Java's float arithmetic is IEEE single precision, as numpy's
 * float32 is), so windows agree exactly. {@link #resize} repeats TensorFlow's half-pixel
 * bilinear resize without antialiasing ({@code geometry.resize_bilinear}), in float32.
 */
public final class Geometry {
    private Geometry() {
    }

    /**
     * The pixel window {@code (y0, x0, y1, x1)}, max exclusive, of a normalised box
     * {@code (ymin, xmin, ymax, xmax)} in a {@code height} x {@code width} frame. A box with a
     * NaN means the whole frame.
     */
    public static int[] cropWindow(float[] box, int height, int width, CropConfig config) {
        if (height < 1 || width < 1) {
            throw new IllegalArgumentException("image size must be at least 1x1 pixels, got "
                    + height + "x" + width);
        }
        if (box.length != 4) {
            throw new IllegalArgumentException("a box has 4 values (ymin, xmin, ymax, xmax), got "
                    + box.length);
        }
        float ymin = box[0];
        float xmin = box[1];
        float ymax = box[2];
        float xmax = box[3];
        if (Float.isNaN(ymin) || Float.isNaN(xmin) || Float.isNaN(ymax) || Float.isNaN(xmax)) {
            ymin = 0f;
            xmin = 0f;
            ymax = 1f;
            xmax = 1f;
        }
        float hImg = height;
        float wImg = width;
        // 1. box in pixels: centre and sides (a collapsed or inverted box has side 0).
        float cy = (ymin + ymax) * 0.5f * hImg;
        float cx = (xmin + xmax) * 0.5f * wImg;
        float bh = Math.max(ymax - ymin, 0f) * hImg;
        float bw = Math.max(xmax - xmin, 0f) * wImg;
        // 2. square-ify.
        if (config.square) {
            bh = Math.max(bh, bw);
            bw = bh;
        }
        // 3. margin: 1 + margin rounded to float32 once, as numpy's np.float32(1.0 + margin).
        float grow = (float) (1.0 + config.margin);
        bh = bh * grow;
        bw = bw * grow;
        // 4. minimum size.
        float shortSide = Math.min(hImg, wImg);
        float smallest = shortSide * (float) config.minSize;
        bh = Math.max(bh, smallest);
        bw = Math.max(bw, smallest);
        // 5. snapping up to a few scales of the short side.
        double[] scales = config.scales();
        if (scales.length > 0) {
            bh = snapUp(bh, shortSide, scales, config.square ? shortSide : bh);
            bw = snapUp(bw, shortSide, scales, config.square ? shortSide : bw);
        }
        // 6. clamp the size inside the image.
        if (config.square) {
            bh = Math.min(bh, shortSide);
            bw = Math.min(bw, shortSide);
        }
        bh = Math.min(bh, hImg);
        bw = Math.min(bw, wImg);
        // 7. whole pixels (round half up), then slide the window inside the image.
        float sh = Math.max(roundHalfUp(bh), 1f);
        float sw = Math.max(roundHalfUp(bw), 1f);
        float y0 = roundHalfUp(cy - sh * 0.5f);
        float x0 = roundHalfUp(cx - sw * 0.5f);
        y0 = Math.min(Math.max(y0, 0f), hImg - sh);
        x0 = Math.min(Math.max(x0, 0f), wImg - sw);
        return new int[] {(int) y0, (int) x0, (int) (y0 + sh), (int) (x0 + sw)};
    }

    private static float roundHalfUp(float v) {
        return (float) Math.floor(v + 0.5f);
    }

    private static float snapUp(float side, float shortSide, double[] scales, float beyond) {
        float snapped = beyond;
        for (int i = scales.length - 1; i >= 0; i--) { // largest first: the smallest fit wins
            float candidate = shortSide * (float) scales[i];
            if (side <= candidate) {
                snapped = candidate;
            }
        }
        return snapped;
    }

    /** One axis of TensorFlow's half-pixel bilinear resize: neighbours and weights. */
    static final class Axis {
        final int[] lower;
        final int[] upper;
        final float[] weight;

        Axis(int outSize, int inSize) {
            lower = new int[outSize];
            upper = new int[outSize];
            weight = new float[outSize];
            float scale = (float) inSize / (float) outSize;
            for (int i = 0; i < outSize; i++) {
                float pos = ((float) i + 0.5f) * scale - 0.5f;
                float lowerF = (float) Math.floor(pos);
                lower[i] = (int) Math.max(lowerF, 0f);
                upper[i] = (int) Math.min((float) Math.ceil(pos), (float) (inSize - 1));
                weight[i] = pos - lowerF;
            }
        }
    }

    /**
     * Resize {@code window} of an ARGB frame ({@code width} pixels a row, alpha ignored) to
     * {@code outHeight} x {@code outWidth}: float32 values, row-major, R G B per pixel, in
     * [0, 255]. Equal to {@code geometry.resize_bilinear(rgb[y0:y1, x0:x1], h, w)}.
     */
    public static float[] resize(int[] argb, int width, int height, int[] window, int outHeight,
                                 int outWidth) {
        int y0 = window[0];
        int x0 = window[1];
        int y1 = window[2];
        int x1 = window[3];
        if (!(0 <= y0 && y0 < y1 && y1 <= height && 0 <= x0 && x0 < x1 && x1 <= width)) {
            throw new IllegalArgumentException("crop window [" + y0 + ", " + x0 + ", " + y1 + ", "
                    + x1 + "] is outside the " + height + "x" + width + " frame");
        }
        if (argb.length < width * height) {
            throw new IllegalArgumentException("an ARGB frame of " + width + "x" + height
                    + " needs " + width * height + " pixels, got " + argb.length);
        }
        if (outHeight < 1 || outWidth < 1) {
            throw new IllegalArgumentException("resize target must be at least 1x1, got "
                    + outHeight + "x" + outWidth);
        }
        Axis ys = new Axis(outHeight, y1 - y0);
        Axis xs = new Axis(outWidth, x1 - x0);
        float[] out = new float[outHeight * outWidth * 3];
        int k = 0;
        for (int i = 0; i < outHeight; i++) {
            int rowLo = (ys.lower[i] + y0) * width + x0;
            int rowHi = (ys.upper[i] + y0) * width + x0;
            float yw = ys.weight[i];
            for (int j = 0; j < outWidth; j++) {
                int tl = argb[rowLo + xs.lower[j]];
                int tr = argb[rowLo + xs.upper[j]];
                int bl = argb[rowHi + xs.lower[j]];
                int br = argb[rowHi + xs.upper[j]];
                float xw = xs.weight[j];
                for (int shift = 16; shift >= 0; shift -= 8) { // R, G, B
                    float a = (tl >> shift) & 0xff;
                    float b = (tr >> shift) & 0xff;
                    float c = (bl >> shift) & 0xff;
                    float d = (br >> shift) & 0xff;
                    float top = a + (b - a) * xw;
                    float bottom = c + (d - c) * xw;
                    out[k++] = top + (bottom - top) * yw;
                }
            }
        }
        return out;
    }
}
