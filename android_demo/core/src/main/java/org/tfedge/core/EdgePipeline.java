package org.tfedge.core;

import java.io.Closeable;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The EdgeCompress inference of one frame, as {@code rpi_runner.EdgePipeline} does it:
 * the whole frame resized for the predictor; its box -> a crop window in the full-resolution
 * frame; each stage gets that window resized to its resolution and quantised with its own
 * input parameters; its output is dequantised with its own output parameters; the early-exit
 * rule decides whether the next stage runs. Without a predictor the window is the frame. A
 * refiner (manifest version 2) runs {@code passes} times between the predictor and the crop:
 * each pass sees its window of the full-resolution frame around the current box, and its box,
 * mapped back ({@link Refine}), replaces the current one.
 *
 * <p>Models are loaded through an {@link InferenceEngine}, and each model's tensors are
 * compared with the manifest first ({@code tfedge.bundle.check_tensor_specs}).
 * Not thread-safe: one pipeline per analysis thread.
 */
public final class EdgePipeline implements Closeable {
    private static final double MS = 1e-6;

    public final Bundle bundle;
    private final InferenceEngine.Model predictor;
    private final InferenceEngine.Model refiner;
    private final InferenceEngine.Model[] stages;
    private OperatingPoint operatingPoint;

    public EdgePipeline(Bundle bundle, InferenceEngine engine, int numThreads)
            throws IOException, BundleException {
        this.bundle = bundle;
        Manifest m = bundle.manifest;
        List<InferenceEngine.Model> loaded = new ArrayList<InferenceEngine.Model>();
        try {
            if (m.predictor != null) {
                predictor = load(engine, m.predictor.file, new TensorSpec[] {m.predictor.input},
                        m.predictor.outputs(), numThreads, loaded);
            } else {
                predictor = null;
            }
            if (m.refiner != null) {
                refiner = load(engine, m.refiner.file, new TensorSpec[] {m.refiner.input},
                        m.refiner.outputs(), numThreads, loaded);
            } else {
                refiner = null;
            }
            stages = new InferenceEngine.Model[m.stages.size()];
            for (int k = 0; k < stages.length; k++) {
                StageEntry s = m.stages.get(k);
                stages[k] = load(engine, s.file, new TensorSpec[] {s.input},
                        new TensorSpec[] {s.output}, numThreads, loaded);
            }
        } catch (BundleException | IOException | RuntimeException e) {
            for (InferenceEngine.Model model : loaded) {
                model.close();
            }
            throw e;
        }
        operatingPoint = m.operatingPoints().get(0);
    }

    private InferenceEngine.Model load(InferenceEngine engine, String file, TensorSpec[] inputs,
                                       TensorSpec[] outputs, int numThreads,
                                       List<InferenceEngine.Model> loaded)
            throws IOException, BundleException {
        InferenceEngine.Model model = engine.load(file, bundle.readModel(file), numThreads);
        loaded.add(model);
        String problem = TensorSpec.difference(inputs, model.inputSpecs(), file + " input");
        if (problem == null) {
            problem = TensorSpec.difference(outputs, model.outputSpecs(), file + " output");
        }
        if (problem != null) {
            throw new BundleException(problem + " (model and manifest disagree): "
                    + JsonReader.REBUILD);
        }
        return model;
    }

    /** Uses the thresholds of {@code point} (one of {@link Manifest#operatingPoints()}). */
    public void setOperatingPoint(OperatingPoint point) {
        if (point.stageCount() != stages.length) {
            throw new IllegalArgumentException("an operating point of " + point.stageCount()
                    + " stages for a cascade of " + stages.length);
        }
        operatingPoint = point;
    }

    public OperatingPoint operatingPoint() {
        return operatingPoint;
    }

    /** One line: what runs per frame, at which resolutions. */
    public String describe() {
        StringBuilder b = new StringBuilder();
        Manifest m = bundle.manifest;
        if (m.predictor != null) {
            b.append("predictor ").append(m.predictor.resolution).append("px");
        }
        if (m.refiner != null) {
            b.append(" -> refiner ").append(m.refiner.resolution).append("px x")
                    .append(m.refiner.passes);
        }
        for (int k = 0; k < m.stages.size(); k++) {
            StageEntry s = m.stages.get(k);
            Double t = operatingPoint.threshold(k);
            b.append(b.length() == 0 ? "" : " -> ").append(s.name).append(' ')
                    .append(s.resolution).append("px (")
                    .append(t == null ? "always exits" : s.criterion + " " + t).append(')');
        }
        return b.toString();
    }

    /** Classifies one ARGB frame ({@code width} x {@code height}, row-major). */
    public FrameResult classify(int[] argb, int width, int height) throws BundleException {
        return classify(argb, width, height, false);
    }

    /** As {@link #classify(int[], int, int)}; {@code trace} keeps every intermediate tensor. */
    public FrameResult classify(int[] argb, int width, int height, boolean trace)
            throws BundleException {
        long start = System.nanoTime();
        Manifest m = bundle.manifest;
        float[] box = null;
        int[] window = {0, 0, height, width};
        Double predictorMs = null;
        long preprocessNs = 0;
        byte[] pInput = null;
        byte[][] pRaw = null;
        float[] pValues = null;
        long macs = 0;
        float[] predictorBox = null;
        Double refinerMs = null;
        List<FrameResult.RefinerTrace> passes = new ArrayList<FrameResult.RefinerTrace>();
        if (predictor != null) {
            long t0 = System.nanoTime();
            pInput = Preprocess.prepareInput(argb, width, height, window, m.predictor.input);
            long t1 = System.nanoTime();
            pRaw = predictor.run(pInput);
            long t2 = System.nanoTime();
            TensorSpec[] specs = m.predictor.outputs();
            float[][] outputs = new float[pRaw.length][];
            int[] ranks = new int[pRaw.length];
            for (int i = 0; i < pRaw.length; i++) {
                outputs[i] = Quantization.dequantize(pRaw[i], specs[i]);
                ranks[i] = specs[i].shape.length;
            }
            pValues = Boxes.predictorValues(outputs, ranks, m.predictor.boxFormat);
            box = Boxes.decodeBox(pValues, m.predictor.boxFormat);
            preprocessNs += t1 - t0;
            predictorMs = (t2 - t1) * MS;
            macs += m.predictor.macs;
            if (refiner != null) {
                predictorBox = box;
                long refinerNs = 0;
                for (int pass = 0; pass < m.refiner.passes; pass++) {
                    long r0 = System.nanoTime();
                    int[] look = Refine.window(box, height, width, m.refiner.window);
                    byte[] rInput = Preprocess.prepareInput(argb, width, height, look,
                            m.refiner.input);
                    long r1 = System.nanoTime();
                    byte[][] rRaw = refiner.run(rInput);
                    long r2 = System.nanoTime();
                    preprocessNs += r1 - r0;
                    refinerNs += r2 - r1;
                    float[] rValues = Boxes.predictorValues(dequantizeAll(rRaw,
                            m.refiner.outputs()), ranks(m.refiner.outputs()), m.refiner.boxFormat);
                    float[] inner = Boxes.decodeBox(rValues, m.refiner.boxFormat);
                    box = Refine.step(box, inner, look, height, width);
                    macs += m.refiner.macs;
                    if (trace) {
                        passes.add(new FrameResult.RefinerTrace(look, rInput, rRaw, rValues, inner,
                                box));
                    }
                }
                refinerMs = refinerNs * MS;
            }
            window = Geometry.cropWindow(box, height, width, m.predictor.crop);
        }
        List<FrameResult.StageTrace> traces = new ArrayList<FrameResult.StageTrace>();
        List<Double> stageMs = new ArrayList<Double>();
        double[] previous = null;
        Decision.StageDecision decision = null;
        byte[] q = null;
        TensorSpec qSpec = null;
        for (int k = 0; k < stages.length; k++) {
            StageEntry entry = m.stages.get(k);
            long t0 = System.nanoTime();
            if (q == null || !entry.input.equals(qSpec)) { // stages often share an input
                qSpec = entry.input;
                q = Preprocess.prepareInput(argb, width, height, window, qSpec);
            }
            long t1 = System.nanoTime();
            byte[] raw = stages[k].run(q)[0];
            long t2 = System.nanoTime();
            preprocessNs += t1 - t0;
            stageMs.add((t2 - t1) * MS);
            macs += entry.macs;
            float[] logits = Quantization.dequantize(raw, entry.output);
            decision = Decision.decideStage(logits, previous, entry.criterion,
                    operatingPoint.threshold(k), entry.accumulateWeight);
            if (trace) {
                traces.add(new FrameResult.StageTrace(q, raw, logits, decision));
            }
            if (decision.exits) {
                break;
            }
            previous = decision.decisionLogits;
        }
        double[] ms = new double[stageMs.size()];
        for (int i = 0; i < ms.length; i++) {
            ms[i] = stageMs.get(i);
        }
        FrameResult.Trace t = trace ? new FrameResult.Trace(pInput, pRaw, pValues, traces, passes)
                : null;
        // decision is set: a bundle has >= 1 stage and its last one always exits.
        return new FrameResult(decision.classIndex, m.labels.get(decision.classIndex),
                decision.probability(), ms.length - 1, decision.score, box, window, ms,
                predictorMs, preprocessNs * MS, (System.nanoTime() - start) * MS, macs, t,
                predictorBox, refinerMs);
    }

    private static float[][] dequantizeAll(byte[][] raw, TensorSpec[] specs) {
        float[][] out = new float[raw.length][];
        for (int i = 0; i < raw.length; i++) {
            out[i] = Quantization.dequantize(raw[i], specs[i]);
        }
        return out;
    }

    private static int[] ranks(TensorSpec[] specs) {
        int[] out = new int[specs.length];
        for (int i = 0; i < specs.length; i++) {
            out[i] = specs[i].shape.length;
        }
        return out;
    }

    @Override
    public void close() {
        if (predictor != null) {
            predictor.close();
        }
        if (refiner != null) {
            refiner.close();
        }
        for (InferenceEngine.Model s : stages) {
            if (s != null) {
                s.close();
            }
        }
    }
}
