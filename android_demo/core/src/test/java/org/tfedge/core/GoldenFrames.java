package org.tfedge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;

import org.json.JSONArray;
import org.json.JSONObject;

/**
 * Replays the frames of a {@code tfedge-golden} file through the Java pipeline: the models'
 * outputs come from Python's LiteRT run, so every step the core computes itself
 * (preprocessing, box decoding, crop window, dequantisation, accumulation, early exit) is
 * compared with Python's.
 */
final class GoldenFrames {
    private GoldenFrames() {
    }

    /** Largest difference of two buffers of the same dtype, in codes. */
    static int maxCodeDifference(byte[] a, byte[] b, DType dtype, String what) {
        assertEquals(what + ": length", a.length, b.length);
        int worst = 0;
        for (int i = 0; i < a.length / dtype.bytes; i++) {
            worst = Math.max(worst, Math.abs(Quantization.code(a, i, dtype)
                    - Quantization.code(b, i, dtype)));
        }
        return worst;
    }

    /** Whether {@code threshold} separates two scores that differ only in their last bits. */
    static boolean knifeEdge(double python, double java, Double threshold) {
        if (threshold == null || python == java
                || Math.abs(python - java) > 1e-12 * Math.max(1, Math.abs(python))) {
            return false;
        }
        return Math.min(python, java) <= threshold && threshold <= Math.max(python, java);
    }

    /** Checks every case; returns a line of statistics (how many things were bit-identical). */
    static String check(JSONObject golden, Bundle bundle) throws Exception {
        assertEquals("tfedge-golden", golden.getString("format"));
        assertEquals(1, golden.getInt("version"));
        JSONArray cases = golden.getJSONArray("cases");
        Manifest m = bundle.manifest;
        int exactInputs = 0;
        int inputs = 0;
        int exactProbabilities = 0;
        int stagesRun = 0;
        int exactBoxes = 0;
        int boxes = 0;
        int refinerPasses = 0;
        for (int c = 0; c < cases.length(); c++) {
            JSONObject k = cases.getJSONObject(c);
            String where = "frame " + c + " (" + k.getString("source") + ")";
            JSONObject frame = k.getJSONObject("frame");
            int[] shape = Golden.shape(frame);
            int height = shape[0];
            int width = shape[1];
            int[] argb = Preprocess.argbFromRgb(Golden.bytes(frame), width, height);

            ReplayEngine engine = new ReplayEngine(m);
            JSONObject p = k.isNull("predictor") ? null : k.getJSONObject("predictor");
            assertEquals(where + ": predictor present", m.predictor != null, p != null);
            if (p != null) {
                JSONArray pOut = p.getJSONArray("outputs");
                byte[][] pRaw = new byte[pOut.length()][];
                for (int i = 0; i < pRaw.length; i++) {
                    pRaw[i] = Golden.bytes(pOut.getJSONObject(i));
                }
                engine.outputs.put(m.predictor.file, pRaw);
            }
            JSONArray passes = k.optJSONArray("refiner");
            assertEquals(where + ": refiner passes", m.refiner == null ? 0 : m.refiner.passes,
                    passes == null ? 0 : passes.length());
            if (passes != null) {
                java.util.List<byte[][]> sequence = new java.util.ArrayList<byte[][]>();
                for (int i = 0; i < passes.length(); i++) {
                    JSONArray out = passes.getJSONObject(i).getJSONArray("outputs");
                    byte[][] raw = new byte[out.length()][];
                    for (int j = 0; j < raw.length; j++) {
                        raw[j] = Golden.bytes(out.getJSONObject(j));
                    }
                    sequence.add(raw);
                }
                engine.sequences.put(m.refiner.file, sequence);
            }
            JSONArray stages = k.getJSONArray("stages");
            for (int s = 0; s < stages.length(); s++) {
                engine.outputs.put(m.stages.get(s).file, new byte[][] {
                    Golden.bytes(stages.getJSONObject(s).getJSONObject("output"))});
            }
            EdgePipeline pipe = new EdgePipeline(bundle, engine, 1);
            FrameResult r = pipe.classify(argb, width, height, true);
            pipe.close();

            if (p != null) {
                // Predictor: input within one code, box values, box and window.
                int diff = maxCodeDifference(Golden.bytes(p.getJSONObject("input")),
                        r.trace.predictorInput, m.predictor.input.dtype, where + " predictor input");
                assertTrue(where + ": predictor input differs by " + diff + " codes", diff <= 1);
                inputs++;
                exactInputs += diff == 0 ? 1 : 0;
                assertArrayEquals(where + ": predictor values",
                        Golden.floats(p.getJSONArray("values")), r.trace.predictorValues, 1e-6f);
                float[] predictorBox = m.refiner != null ? r.predictorBox : r.box;
                assertArrayEquals(where + ": predictor box", Golden.floats(p.getJSONArray("box")),
                        predictorBox, 1e-6f);
                exactBoxes += Arrays.equals(Golden.floats(p.getJSONArray("box")), predictorBox)
                        ? 1 : 0;
                boxes++;
            }
            for (int i = 0; passes != null && i < passes.length(); i++) {
                // Refiner pass: window exactly, input within one code, values and boxes.
                JSONObject g = passes.getJSONObject(i);
                FrameResult.RefinerTrace t = r.trace.refiner.get(i);
                String at = where + " refiner pass " + i;
                assertArrayEquals(at + ": window", Golden.ints(g.getJSONArray("window")), t.window);
                int d = maxCodeDifference(Golden.bytes(g.getJSONObject("input")), t.input,
                        m.refiner.input.dtype, at + " input");
                assertTrue(at + ": input differs by " + d + " codes", d <= 1);
                inputs++;
                exactInputs += d == 0 ? 1 : 0;
                assertArrayEquals(at + ": values", Golden.floats(g.getJSONArray("values")),
                        t.values, 1e-6f);
                assertArrayEquals(at + ": inner box", Golden.floats(g.getJSONArray("inner")),
                        t.inner, 1e-6f);
                float[] expected = Golden.floats(g.getJSONArray("box"));
                assertArrayEquals(at + ": box", expected, t.box, 1e-6f);
                // From Python's own inner box, the mapping and merge are float32 and exact.
                float[] previous = i == 0 ? Golden.floats(p.getJSONArray("box"))
                        : Golden.floats(passes.getJSONObject(i - 1).getJSONArray("box"));
                assertArrayEquals(at + ": mapped and merged box", expected,
                        Refine.step(previous, Golden.floats(g.getJSONArray("inner")),
                                t.window, height, width), 0f);
                exactBoxes += Arrays.equals(expected, t.box) ? 1 : 0;
                boxes++;
                refinerPasses++;
            }
            if (passes != null) {
                assertArrayEquals(where + ": refined box", Golden.floats(passes.getJSONObject(
                        passes.length() - 1).getJSONArray("box")), r.box, 0f);
            }
            assertArrayEquals(where + ": crop window", Golden.ints(k.getJSONArray("window")),
                    r.window);

            // Stages: the same ones ran; inputs within one code; the same numbers and decisions.
            assertEquals(where + ": stages run", stages.length(), r.trace.stages.size());
            for (int s = 0; s < stages.length(); s++) {
                JSONObject g = stages.getJSONObject(s);
                FrameResult.StageTrace t = r.trace.stages.get(s);
                String at = where + " stage " + s;
                int d = maxCodeDifference(Golden.bytes(g.getJSONObject("input")), t.input,
                        m.stages.get(s).input.dtype, at + " input");
                assertTrue(at + ": input differs by " + d + " codes", d <= 1);
                inputs++;
                exactInputs += d == 0 ? 1 : 0;
                assertArrayEquals(at + ": dequantised logits",
                        Golden.floats(g.getJSONArray("logits")), t.logits, 0f);
                assertArrayEquals(at + ": decision logits",
                        Golden.doubles(g.getJSONArray("decision_logits")),
                        t.decision.decisionLogits, 0.0);
                double[] probabilities = Golden.doubles(g.getJSONArray("probabilities"));
                assertArrayEquals(at + ": probabilities", probabilities, t.decision.probabilities,
                        1e-12);
                exactProbabilities += Arrays.equals(probabilities, t.decision.probabilities) ? 1 : 0;
                stagesRun++;
                assertEquals(at + ": score", g.getDouble("score"), t.decision.score, 1e-12);
                assertEquals(at + ": class", g.getInt("class"), t.decision.classIndex);
                assertEquals(at + ": exits", g.getBoolean("exits"), t.decision.exits);
            }
            JSONObject result = k.getJSONObject("result");
            assertEquals(where + ": class", result.getInt("class"), r.classIndex);
            assertEquals(where + ": label", result.getString("label"), r.label);
            assertEquals(where + ": exit stage", result.getInt("exit_stage"), r.exitStage);
            assertEquals(where + ": score", result.getDouble("score"), r.score, 1e-12);
        }
        return cases.length() + " frames" + (refinerPasses > 0 ? " (" + refinerPasses
                + " refiner passes)" : "") + "; " + exactInputs + " of " + inputs + " model inputs "
                + "identical to Python's (the rest within 1 code); " + exactBoxes + " of " + boxes
                + " boxes bit-identical (the rest within 1e-6); " + exactProbabilities + " of "
                + stagesRun + " stage probability vectors bit-identical (the rest within 1e-12)";
    }

    /** The {@code decision_cases} of a golden file: the early-exit rule alone. */
    static String checkDecisionCases(JSONArray cases) throws Exception {
        int exact = 0;
        int knifeEdges = 0;
        for (int i = 0; i < cases.length(); i++) {
            JSONObject g = cases.getJSONObject(i);
            String at = "decision case " + i + " (" + g.getString("criterion") + ")";
            Double threshold = g.isNull("threshold") ? null : g.getDouble("threshold");
            double[] previous = g.isNull("previous") ? null : Golden.doubles(g.getJSONArray("previous"));
            Decision.StageDecision d = Decision.decideStage(Golden.floats(g.getJSONArray("logits")),
                    previous, g.getString("criterion"), threshold, g.getDouble("accumulate_weight"));
            assertArrayEquals(at + ": decision logits",
                    Golden.doubles(g.getJSONArray("decision_logits")), d.decisionLogits, 0.0);
            double[] p = Golden.doubles(g.getJSONArray("probabilities"));
            assertArrayEquals(at + ": probabilities", p, d.probabilities, 1e-12);
            double score = g.getDouble("score");
            assertEquals(at + ": score", score, d.score, 1e-12 * Math.max(1, Math.abs(score)));
            assertEquals(at + ": class", g.getInt("class"), d.classIndex);
            if (g.getBoolean("exits") != d.exits) {
                // Allowed only on a knife edge: the threshold lies between Python's score and
                // this one, which differ in the last bits (the JVM's exp/log and numpy's differ
                // by an ulp on some inputs; numpy's own differ between CPUs).
                assertTrue(at + ": exits " + d.exits + " with score " + d.score + ", Python: "
                        + g.getBoolean("exits") + " with score " + score + ", threshold "
                        + threshold, knifeEdge(score, d.score, threshold));
                knifeEdges++;
            }
            exact += Arrays.equals(p, d.probabilities) && score == d.score ? 1 : 0;
        }
        return cases.length() + " decision cases, " + exact + " bit-identical, " + knifeEdges
                + " decided differently on a knife edge (threshold between Python's score and "
                + "the JVM's, which differ by an ulp)";
    }
}
