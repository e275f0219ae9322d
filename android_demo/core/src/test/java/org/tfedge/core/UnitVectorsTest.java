package org.tfedge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Test;

/** The pure functions against the Python runtime's own results ({@code unit.json}). */
public class UnitVectorsTest {
    private static JSONObject unit;

    @BeforeClass
    public static void load() throws Exception {
        unit = Golden.load("unit.json");
    }

    private static DType dtype(JSONObject c) throws Exception {
        return DType.fromJsonName(c.getString("dtype"));
    }

    @Test
    public void quantizeLikeLitert() throws Exception {
        JSONArray cases = unit.getJSONArray("quantize");
        int checked = 0;
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            DType t = dtype(c);
            double scale = c.getDouble("scale");
            int zp = c.getInt("zero_point");
            double[] values = Golden.doubles(c.getJSONArray("values"));
            int[] codes = Golden.ints(c.getJSONArray("codes"));
            TensorSpec spec = new TensorSpec(new int[] {1, values.length}, t, scale, zp);
            for (int k = 0; k < values.length; k++) {
                String at = t.jsonName + " scale " + scale + " zp " + zp + " value " + values[k];
                assertEquals(at, codes[k], Quantization.quantize(values[k], scale, zp, t));
                // The preprocessing path (float32 pixels in [0, 255]) must agree too.
                float f = (float) values[k];
                if (f == values[k] && f >= 0 && f <= 255) {
                    byte[] raw = Quantization.quantizePixels(new float[] {f}, spec);
                    assertEquals(at + " (pixels)", codes[k], Quantization.code(raw, 0, t));
                }
                checked++;
            }
        }
        assertTrue(checked > 300);
    }

    @Test
    public void dequantizeLikeLitert() throws Exception {
        JSONArray cases = unit.getJSONArray("dequantize");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            DType t = dtype(c);
            TensorSpec spec = new TensorSpec(new int[] {1}, t, c.getDouble("scale"),
                    c.getInt("zero_point"));
            int[] codes = Golden.ints(c.getJSONArray("codes"));
            byte[] raw = new byte[codes.length * t.bytes];
            for (int k = 0; k < codes.length; k++) {
                Quantization.put(raw, k, codes[k], t);
            }
            assertArrayEquals(spec.toString(), Golden.floats(c.getJSONArray("values")),
                    Quantization.dequantize(raw, spec), 0f);
        }
    }

    @Test
    public void resizeIsBitIdentical() throws Exception {
        JSONArray cases = unit.getJSONArray("resize");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            int h = c.getInt("height");
            int w = c.getInt("width");
            int[] pixels = Golden.ints(c.getJSONArray("image"));
            byte[] rgb = new byte[pixels.length];
            for (int k = 0; k < rgb.length; k++) {
                rgb[k] = (byte) pixels[k];
            }
            float[] out = Geometry.resize(Preprocess.argbFromRgb(rgb, w, h), w, h,
                    Golden.ints(c.getJSONArray("window")), c.getInt("out_height"),
                    c.getInt("out_width"));
            assertArrayEquals("resize case " + i, Golden.floats(c.getJSONArray("values")), out, 0f);
        }
    }

    @Test
    public void cropWindowsAreIdentical() throws Exception {
        JSONArray cases = unit.getJSONArray("crop_window");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            JSONArray b = c.getJSONArray("box");
            float[] box = new float[4];
            for (int k = 0; k < 4; k++) {
                box[k] = b.isNull(k) ? Float.NaN : (float) b.getDouble(k);
            }
            CropConfig config = CropConfig.fromJson(c.getJSONObject("config"));
            int[] window = Geometry.cropWindow(box, c.getInt("height"), c.getInt("width"), config);
            assertArrayEquals("crop case " + i + ": " + c, Golden.ints(c.getJSONArray("window")),
                    window);
        }
        assertTrue(cases.length() >= 300);
    }

    @Test
    public void boxesDecodeAsInPython() throws Exception {
        JSONArray cases = unit.getJSONArray("box");
        int exact = 0;
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            String format = c.getString("box_format");
            JSONArray outs = c.getJSONArray("outputs");
            JSONArray shapes = c.getJSONArray("output_shapes");
            float[][] outputs = new float[outs.length()][];
            int[] ranks = new int[outs.length()];
            for (int k = 0; k < outputs.length; k++) {
                outputs[k] = Golden.floats(outs.getJSONArray(k));
                ranks[k] = shapes.getJSONArray(k).length();
            }
            float[] values = Boxes.predictorValues(outputs, ranks, format);
            float[] expected = Golden.floats(c.getJSONArray("values"));
            String at = "box case " + i + " (" + format + ")";
            // The heat map's weighted sums may round differently in the last bit (numpy's
            // matmul goes through BLAS); the other formats are exact.
            assertArrayEquals(at + ": values", expected, values,
                    Boxes.HEATMAP.equals(format) ? 1e-6f : 0f);
            exact += java.util.Arrays.equals(expected, values) ? 1 : 0;
            assertArrayEquals(at + ": box", Golden.floats(c.getJSONArray("box")),
                    Boxes.decodeBox(values, format), 1e-6f);
            // The reverse order of the heat-map outputs decodes the same.
            if (outputs.length == 2) {
                float[] swapped = Boxes.predictorValues(new float[][] {outputs[1], outputs[0]},
                        new int[] {ranks[1], ranks[0]}, format);
                assertArrayEquals(at + ": swapped outputs", values, swapped, 0f);
            }
        }
        System.out.println("UnitVectorsTest: " + exact + " of " + cases.length()
                + " box value sets bit-identical to Python's");
    }

    @Test
    public void decisionsAreTheSame() throws Exception {
        JSONArray cases = unit.getJSONArray("decisions");
        int stagesChecked = 0;
        int knifeEdges = 0;
        for (int i = 0; i < cases.length(); i++) {
            JSONArray stages = cases.getJSONObject(i).getJSONArray("stages");
            double[] previous = null;
            for (int s = 0; s < stages.length(); s++) {
                JSONObject g = stages.getJSONObject(s);
                String at = "decision case " + i + " stage " + s + " (" + g.getString("criterion") + ")";
                Double threshold = g.isNull("threshold") ? null : g.getDouble("threshold");
                Decision.StageDecision d = Decision.decideStage(
                        Golden.floats(g.getJSONArray("logits")), previous,
                        g.getString("criterion"), threshold, g.getDouble("accumulate_weight"));
                assertArrayEquals(at + ": decision logits",
                        Golden.doubles(g.getJSONArray("decision_logits")), d.decisionLogits, 0.0);
                if (!g.isNull("probabilities")) {
                    assertArrayEquals(at + ": probabilities",
                            Golden.doubles(g.getJSONArray("probabilities")), d.probabilities, 1e-12);
                }
                double score = g.getDouble("score");
                assertEquals(at + ": score", score, d.score, 1e-12 * Math.max(1, Math.abs(score)));
                assertEquals(at + ": class", g.getInt("class"), d.classIndex);
                if (g.getBoolean("exits") != d.exits) {
                    // Only on a knife edge: the threshold between Python's score and this one.
                    assertTrue(at + ": exits " + d.exits + " with score " + d.score + ", Python: "
                            + g.getBoolean("exits") + " with score " + score,
                            GoldenFrames.knifeEdge(score, d.score, threshold));
                    knifeEdges++;
                }
                previous = d.decisionLogits;
                stagesChecked++;
            }
        }
        assertTrue(stagesChecked > 40);
        System.out.println("UnitVectorsTest: " + stagesChecked + " decisions, " + knifeEdges
                + " decided differently on a knife edge");
    }
}
