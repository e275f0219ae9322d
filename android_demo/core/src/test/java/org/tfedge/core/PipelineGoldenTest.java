package org.tfedge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * Whole frames through the Java pipeline against {@code tfedge-pi --golden} output
 * ({@code pipeline.json}): the models' outputs are replayed from Python's LiteRT run, so every
 * step the Java core computes itself (preprocessing, box decoding, crop window, dequantisation,
 * accumulation, early exit) is compared with Python's.
 */
public class PipelineGoldenTest {
    private static JSONObject golden;
    private static Bundle bundle;

    @BeforeClass
    public static void load() throws Exception {
        golden = Golden.load("pipeline.json");
        bundle = Bundle.load(new FolderSource(Golden.bundleDir()));
    }

    @Test
    public void vectorsComeFromTheCommittedBundle() throws Exception {
        assertEquals("tfedge-golden", golden.getString("format"));
        assertEquals(1, golden.getInt("version"));
        JSONObject files = golden.getJSONObject("manifest").getJSONObject("files");
        for (String name : bundle.manifest.files.keySet()) {
            assertEquals(name, files.getJSONObject(name).getString("sha256"),
                    bundle.manifest.files.get(name).sha256);
        }
        assertTrue("the golden cases must exercise every stage's exit", exitStagesSeen() == 7);
    }

    private static int exitStagesSeen() throws Exception {
        JSONArray cases = golden.getJSONArray("cases");
        int seen = 0;
        for (int i = 0; i < cases.length(); i++) {
            seen |= 1 << cases.getJSONObject(i).getJSONObject("result").getInt("exit_stage");
        }
        return seen;
    }

    @Test
    public void everyFrameMatchesThePythonRunner() throws Exception {
        System.out.println("PipelineGoldenTest: " + GoldenFrames.check(golden, bundle));
    }

    @Test
    public void modelsWhoseTensorsDisagreeWithTheManifestAreRefused() throws Exception {
        Manifest m = bundle.manifest;
        StageEntry s = m.stages.get(1);
        ReplayEngine engine = new ReplayEngine(m);
        TensorSpec wrong = new TensorSpec(s.output.shape, s.output.dtype, s.output.scale * 1.01,
                s.output.zeroPoint);
        engine.declare(s.file, new TensorSpec[] {s.input}, new TensorSpec[] {wrong});
        try {
            new EdgePipeline(bundle, engine, 1);
            fail("a model whose output scale differs from the manifest was accepted");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith("stage1.tflite output scale is "));
            assertTrue(e.getMessage(), e.getMessage().contains("(model and manifest disagree)"));
        }
    }

    @Test
    public void anOperatingPointReplacesTheThresholds() throws Exception {
        Manifest m = bundle.manifest;
        assertEquals(1, m.operatingPoints().size());
        assertEquals(m.stages.get(0).threshold, m.operatingPoints().get(0).threshold(0));
        assertNull(m.operatingPoints().get(0).threshold(2));
        JSONObject k = golden.getJSONArray("cases").getJSONObject(0);
        JSONObject frame = k.getJSONObject("frame");
        int[] shape = Golden.shape(frame);
        ReplayEngine engine = new ReplayEngine(m);
        JSONArray pOut = k.getJSONObject("predictor").getJSONArray("outputs");
        engine.outputs.put(m.predictor.file, new byte[][] {Golden.bytes(pOut.getJSONObject(0)),
                Golden.bytes(pOut.getJSONObject(1))});
        for (StageEntry s : m.stages) {
            engine.outputs.put(s.file, new byte[][] {new byte[s.output.byteCount()]});
        }
        EdgePipeline pipe = new EdgePipeline(bundle, engine, 1);
        // Never exit early: every stage runs.
        pipe.setOperatingPoint(new OperatingPoint("slowest", new Double[] {2.0, -1.0, null}));
        FrameResult r = pipe.classify(Preprocess.argbFromRgb(Golden.bytes(frame), shape[1],
                shape[0]), shape[1], shape[0]);
        assertEquals(2, r.exitStage);
        assertEquals(3, r.stageMs.length);
        assertNotNull(r.predictorMs);
        assertTrue(pipe.describe(), pipe.describe().startsWith("predictor 24px -> small 16px"));
        pipe.close();
    }
}
