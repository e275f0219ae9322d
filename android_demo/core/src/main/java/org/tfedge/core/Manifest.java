package org.tfedge.core;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

import org.json.JSONArray;
import org.json.JSONObject;

/**
 * A checked {@code manifest.json} (format {@code tfedge-bundle}, version 1, or 2 when it holds a
 * refiner; {@code docs/bundle.md}).
 *
 * <p>The checks and their order are the Python reader's ({@code tfedge.bundle._parse_manifest}),
 * and each refusal is a {@link BundleException} worded as Python's, so a bundle one side
 * refuses the other refuses too (the JVM tests replay the Python refusals). Fields this
 * reader does not know are ignored; a newer version is refused with a request to upgrade.
 * Files are not read here: {@link Bundle#load} checks them.
 */
public final class Manifest {
    public static final String FORMAT = "tfedge-bundle";
    /** The newest manifest version this reader understands. */
    public static final int VERSION = 2;
    /** The version a manifest holding a refiner needs (version 1 readers would ignore it). */
    public static final int REFINER_VERSION = 2;
    public static final String MANIFEST_NAME = "manifest.json";
    public static final long MAX_MANIFEST_BYTES = 16L << 20;
    private static final String MODEL_SUFFIX = ".tflite";
    private static final Pattern SAFE_COMPONENT = Pattern.compile("^[A-Za-z0-9_][A-Za-z0-9._-]*$");
    private static final Pattern SHA256 = Pattern.compile("^[0-9a-f]{64}$");
    /** Characters per file-name part (file systems allow 255 bytes). */
    public static final int MAX_NAME_PART = 128;
    /** Parts per file name. */
    public static final int MAX_NAME_DEPTH = 8;
    private static final String[] COLORS = {"RGB"};
    private static final String[] RESIZES = {"bilinear"};
    private static final String[] DTYPES = {"int8", "uint8", "int16", "float32"};

    public final int version;
    public final String createdUtc;
    public final String tfedgeVersion;
    public final List<String> labels;
    public final String labelsFile;
    public final JSONObject preprocessing;
    /** Null: classify the whole frame. */
    public final PredictorEntry predictor;
    /** The predictor's refiner (version 2); null without one. */
    public final RefinerEntry refiner;
    public final List<StageEntry> stages;
    public final JSONObject metrics;
    public final Map<String, FileEntry> files;
    /** The whole manifest as read (unknown fields included). */
    public final JSONObject json;

    private Manifest(int version, String createdUtc, String tfedgeVersion, List<String> labels,
                     String labelsFile, JSONObject preprocessing, PredictorEntry predictor,
                     RefinerEntry refiner, List<StageEntry> stages, JSONObject metrics,
                     Map<String, FileEntry> files, JSONObject json) {
        this.version = version;
        this.createdUtc = createdUtc;
        this.tfedgeVersion = tfedgeVersion;
        this.labels = Collections.unmodifiableList(labels);
        this.labelsFile = labelsFile;
        this.preprocessing = preprocessing;
        this.predictor = predictor;
        this.refiner = refiner;
        this.stages = Collections.unmodifiableList(stages);
        this.metrics = metrics;
        this.files = Collections.unmodifiableMap(files);
        this.json = json;
    }

    /** The operating points of the cascade: for version 1, the manifest's own thresholds. */
    public List<OperatingPoint> operatingPoints() {
        Double[] thresholds = new Double[stages.size()];
        for (int i = 0; i < thresholds.length; i++) {
            thresholds[i] = stages.get(i).threshold;
        }
        return Collections.singletonList(new OperatingPoint("calibrated", thresholds));
    }

    /** The model files: the predictor's and refiner's (if any) first, then the stages'. */
    public List<String> modelFiles() {
        List<String> out = new ArrayList<String>();
        if (predictor != null) {
            out.add(predictor.file);
        }
        if (refiner != null) {
            out.add(refiner.file);
        }
        for (StageEntry s : stages) {
            out.add(s.file);
        }
        return out;
    }

    // ------------------------------------------------------------------ reading

    /**
     * Parses and checks the bytes of a {@code manifest.json}: UTF-8, at most 16 MiB, JSON by
     * the Python reader's strict rules ({@link StrictJson}).
     */
    public static Manifest parse(byte[] utf8) throws BundleException {
        if (utf8.length > MAX_MANIFEST_BYTES) {
            throw new BundleException("manifest.json is " + utf8.length + " bytes, over the "
                    + "16.0 MiB limit: " + JsonReader.REBUILD);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(utf8)).toString();
        } catch (CharacterCodingException e) {
            throw new BundleException("manifest.json is not valid JSON (not UTF-8: " + e
                    + "): " + JsonReader.REBUILD, e);
        }
        return parse(StrictJson.parse(text));
    }

    /** Checks a parsed manifest (a {@link JSONObject}, or anything else to be refused). */
    public static Manifest parse(Object obj) throws BundleException {
        JsonReader r = new JsonReader(obj, "");
        Object fmt = r.obj.opt("format");
        if (!FORMAT.equals(fmt)) {
            throw new BundleException("manifest.json: format is " + Py.value(fmt) + ", not '"
                    + FORMAT + "': this is not a tfedge bundle; build one with tfedge-convert");
        }
        Object version = r.get("version");
        if (!JsonReader.isInt(version) || ((Number) version).longValue() < 1) {
            throw JsonReader.fail("manifest.json: 'version' must be a whole number >= 1, got "
                    + Py.value(version));
        }
        if (((Number) version).longValue() > VERSION) {
            throw new BundleException("bundle version " + version + " is newer than this tfedge "
                    + "supports (" + VERSION + "): upgrade the tfedge app");
        }
        String created = r.string("created_utc");
        String tfedgeVersion = r.string("tfedge_version");
        List<String> labels = parseLabels(r.get("labels"));
        String labelsFile = checkRelativeName(r.get("labels_file"), "'labels_file'");
        JSONObject pre = r.mapping("preprocessing");
        JsonReader pr = new JsonReader(pre, "preprocessing");
        pr.choice("color", COLORS, "RGB");
        pr.choice("resize", RESIZES, "bilinear");
        Object range = pr.get("pixel_range");
        if (!isPixelRange(range)) {
            throw JsonReader.fail("manifest.json: 'preprocessing.pixel_range' is "
                    + Py.value(range) + ", version " + version + " bundles feed raw pixels [0, 255]");
        }
        Object rawPredictor = r.get("predictor");
        PredictorEntry predictor = rawPredictor == null ? null : parsePredictor(rawPredictor);
        Object rawRefiner = r.obj.opt("refiner");
        RefinerEntry refiner = null;
        if (rawRefiner != null && rawRefiner != JSONObject.NULL) {
            if (((Number) version).longValue() < REFINER_VERSION) {
                throw JsonReader.fail("manifest.json: a version " + version + " manifest holds a "
                        + "'refiner', which needs version " + REFINER_VERSION + " (older readers "
                        + "would ignore it and crop elsewhere)");
            }
            if (predictor == null) {
                throw JsonReader.fail("manifest.json: 'refiner' refines the predictor's box but "
                        + "'predictor' is null");
            }
            refiner = parseRefiner(rawRefiner);
        }
        JSONArray rawStages = JsonReader.array(r.get("stages"));
        if (rawStages == null || rawStages.length() == 0) {
            throw JsonReader.fail("manifest.json: 'stages' must be a non-empty list (at least one "
                    + "classifier)");
        }
        List<StageEntry> stages = new ArrayList<StageEntry>();
        for (int i = 0; i < rawStages.length(); i++) {
            stages.add(parseStage(rawStages.opt(i), i, rawStages.length(), labels.size()));
        }
        List<String> names = new ArrayList<String>();
        for (StageEntry s : stages) {
            names.add(s.name);
        }
        if (new HashSet<String>(names).size() != names.size()) {
            throw JsonReader.fail("manifest.json: stage names must be unique, got "
                    + Py.strings(names));
        }
        JSONObject metrics = r.mapping("metrics");
        Map<String, FileEntry> files = parseFiles(r);
        List<String> referenced = new ArrayList<String>();
        referenced.add(labelsFile);
        if (predictor != null) {
            referenced.add(predictor.file);
        }
        if (refiner != null) {
            referenced.add(refiner.file);
        }
        for (StageEntry s : stages) {
            referenced.add(s.file);
        }
        if (new HashSet<String>(referenced).size() != referenced.size()) {
            throw JsonReader.fail("manifest.json: the labels file and the models must be "
                    + "different files, got " + Py.strings(referenced));
        }
        for (String name : referenced) {
            if (!files.containsKey(name)) {
                throw JsonReader.fail("manifest.json: " + Py.str(name) + " is used but not listed "
                        + "under 'files'");
            }
        }
        return new Manifest(((Number) version).intValue(), created, tfedgeVersion, labels,
                labelsFile, pre, predictor, refiner, stages, metrics, files, r.obj);
    }

    private static boolean isPixelRange(Object v) {
        JSONArray a = JsonReader.array(v);
        if (a == null || a.length() != 2) {
            return false;
        }
        Object lo = a.opt(0);
        Object hi = a.opt(1);
        // Python compares [0.0, 255.0] == [0, 255] as equal; so does this.
        return lo instanceof Number && !(lo instanceof Boolean) && hi instanceof Number
                && !(hi instanceof Boolean) && ((Number) lo).doubleValue() == 0.0
                && ((Number) hi).doubleValue() == 255.0;
    }

    /** Characters Python's {@code str.splitlines} breaks lines at. */
    static boolean isLineBreak(char c) {
        return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d
                || c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
    }

    /** Python's {@code str.isspace} for one character (what {@code str.strip} removes). */
    static boolean isPythonSpace(char c) {
        return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85
                || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028
                || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
    }

    private static List<String> parseLabels(Object raw) throws BundleException {
        JSONArray a = JsonReader.array(raw);
        if (a == null || a.length() == 0) {
            throw JsonReader.fail("manifest.json: 'labels' must be a non-empty list of strings, "
                    + "got " + Py.value(raw));
        }
        List<String> labels = new ArrayList<String>();
        for (int i = 0; i < a.length(); i++) {
            Object label = a.opt(i);
            boolean ok = label instanceof String;
            if (ok) {
                String s = (String) label;
                boolean blank = true;
                for (int k = 0; k < s.length(); k++) {
                    ok &= !isLineBreak(s.charAt(k));
                    blank &= isPythonSpace(s.charAt(k));
                }
                ok &= !blank;
            }
            if (!ok) {
                throw JsonReader.fail("manifest.json: 'labels[" + i + "]' must be a non-empty "
                        + "one-line string, got " + Py.value(label));
            }
            labels.add((String) label);
        }
        return labels;
    }

    /** A file name inside a bundle: relative, '/'-separated, no '..', no odd characters. */
    static String checkRelativeName(Object name, String where) throws BundleException {
        if (!(name instanceof String) || ((String) name).isEmpty()) {
            throw JsonReader.fail("manifest.json: " + where + " must be a file name, got "
                    + Py.value(name));
        }
        String s = (String) name;
        boolean ok = !s.equals(MANIFEST_NAME);
        for (String part : s.split("/", -1)) {
            ok &= SAFE_COMPONENT.matcher(part).matches();
        }
        if (!ok) {
            throw JsonReader.fail("manifest.json: " + where + " " + Py.str(s) + " is not a plain "
                    + "relative file name (letters, digits, '._-', no '..' or leading '/')");
        }
        String[] parts = s.split("/", -1);
        boolean tooLong = parts.length > MAX_NAME_DEPTH;
        for (String part : parts) {
            tooLong |= part.length() > MAX_NAME_PART;
        }
        if (tooLong) {
            throw JsonReader.fail("manifest.json: " + where + " " + Py.str(s.substring(0,
                    Math.min(40, s.length()))) + "... is longer than bundles allow (at most "
                    + MAX_NAME_DEPTH + " folders deep, " + MAX_NAME_PART + " characters each)");
        }
        return s;
    }

    private static String modelFile(JsonReader r, String where) throws BundleException {
        String file = checkRelativeName(r.get("file"), "'" + where + ".file'");
        if (!file.endsWith(MODEL_SUFFIX)) {
            throw JsonReader.fail("manifest.json: '" + where + ".file' " + Py.str(file)
                    + " must end in " + MODEL_SUFFIX);
        }
        return file;
    }

    static TensorSpec parseTensorSpec(Object obj, String where) throws BundleException {
        JsonReader r = new JsonReader(obj, where);
        Object rawShape = r.get("shape");
        JSONArray a = JsonReader.array(rawShape);
        boolean ok = a != null && a.length() > 0;
        int[] shape = new int[ok ? a.length() : 0];
        for (int i = 0; ok && i < shape.length; i++) {
            Object v = a.opt(i);
            ok = JsonReader.isInt(v) && ((Number) v).longValue() >= 1
                    && ((Number) v).longValue() <= Integer.MAX_VALUE;
            shape[i] = ok ? ((Number) v).intValue() : 0;
        }
        if (!ok) {
            throw JsonReader.fail("manifest.json: '" + where + ".shape' must be a list of positive "
                    + "whole numbers, got " + Py.value(rawShape));
        }
        DType dtype = DType.fromJsonName(r.choice("dtype", DTYPES, DType.choices()));
        double scale = r.number("scale");
        Object zeroPoint = r.get("zero_point");
        if (!JsonReader.isInt(zeroPoint)) {
            throw JsonReader.fail("manifest.json: '" + where + ".zero_point' must be a whole "
                    + "number, got " + Py.value(zeroPoint));
        }
        long zp = ((Number) zeroPoint).longValue();
        if (dtype.isInteger() && (scale <= 0 || zp < dtype.min || zp > dtype.max)) {
            throw JsonReader.fail("manifest.json: '" + where + "' is a " + dtype.jsonName
                    + " tensor with scale " + Py.number(scale) + " and zero point " + zp
                    + ": quantised tensors need scale > 0 and a zero point in [" + dtype.min
                    + ", " + dtype.max + "]");
        }
        if (zp < Integer.MIN_VALUE || zp > Integer.MAX_VALUE) {
            throw JsonReader.fail("manifest.json: '" + where + ".zero_point' " + zp
                    + " is out of range");
        }
        return new TensorSpec(shape, dtype, scale, (int) zp);
    }

    private static void checkImageInput(TensorSpec spec, int resolution, String where)
            throws BundleException {
        int[] expected = {1, resolution, resolution, 3};
        if (!java.util.Arrays.equals(spec.shape, expected)) {
            throw JsonReader.fail("manifest.json: '" + where + ".input.shape' is "
                    + spec.shapeText() + " but resolution " + resolution + " needs "
                    + Py.list(expected));
        }
    }

    private static StageEntry parseStage(Object obj, int index, int count, int numLabels)
            throws BundleException {
        String where = "stages[" + index + "]";
        JsonReader r = new JsonReader(obj, where);
        String name = r.string("name");
        String file = modelFile(r, where);
        int resolution = (int) Math.min(r.integer("resolution", 1), Integer.MAX_VALUE);
        long macs = r.integer("macs", 0);
        String criterion = r.choice("criterion", Decision.CRITERIA,
                JsonReader.joined(Decision.CRITERIA));
        Object rawThreshold = r.get("threshold");
        boolean last = index == count - 1;
        Double threshold = null;
        if (rawThreshold == null) {
            if (!last) {
                throw JsonReader.fail("manifest.json: '" + where + ".threshold' is null (always "
                        + "exit) but " + (count - 1 - index) + " stage(s) follow it and could "
                        + "never run", "give it a threshold, or drop the later stages and rebuild");
            }
        } else {
            if (last) {
                throw JsonReader.fail("manifest.json: '" + where + ".threshold' is "
                        + Py.value(rawThreshold) + " but the last stage must have threshold null "
                        + "(every image exits there)");
            }
            threshold = r.number("threshold");
            if (!Decision.ENTROPY.equals(criterion) && threshold > 1.0) {
                throw JsonReader.fail("manifest.json: '" + where + ".threshold' "
                        + Py.number(threshold) + " is above 1 but criterion " + criterion
                        + " compares a probability");
            }
        }
        double accumulate = r.number("accumulate_weight");
        if (index == 0 && accumulate != 0.0) {
            throw JsonReader.fail("manifest.json: '" + where + ".accumulate_weight' is "
                    + Py.number(accumulate) + " but the first stage has no earlier logits to "
                    + "accumulate: it must be 0");
        }
        TensorSpec in = parseTensorSpec(r.get("input"), where + ".input");
        checkImageInput(in, resolution, where);
        TensorSpec out = parseTensorSpec(r.get("output"), where + ".output");
        if (out.shape.length != 2 || out.shape[0] != 1 || out.shape[1] != numLabels) {
            throw JsonReader.fail("manifest.json: '" + where + ".output.shape' is "
                    + out.shapeText() + " but the bundle has " + numLabels + " labels (expected [1, "
                    + numLabels + "])", "write labels matching the model's classes and rebuild "
                    + "the bundle");
        }
        JSONObject metrics = r.mapping("metrics");
        return new StageEntry(name, file, resolution, macs, criterion, threshold, accumulate, in,
                out, metrics);
    }

    private static void checkHeatmapOutputs(TensorSpec[] outputs, String where)
            throws BundleException {
        List<int[]> shapes = new ArrayList<int[]>();
        for (TensorSpec o : outputs) {
            shapes.add(o.shape);
        }
        Collections.sort(shapes, (a, b) -> Integer.compare(a.length, b.length)); // stable
        boolean ok = shapes.size() == 2 && shapes.get(0).length == 2 && shapes.get(1).length == 3
                && shapes.get(1)[0] == shapes.get(0)[0] && shapes.get(1)[1] == shapes.get(0)[1]
                && shapes.get(1)[2] == 2 && shapes.get(0)[1] > 0;
        if (ok) {
            long n = shapes.get(0)[1];
            long side = Math.round(Math.sqrt(n));
            ok = side * side == n;
        }
        if (!ok) {
            StringBuilder b = new StringBuilder("[");
            for (int i = 0; i < shapes.size(); i++) {
                b.append(i == 0 ? "" : ", ").append(Py.list(shapes.get(i)));
            }
            throw JsonReader.fail("manifest.json: '" + where + ".output' shapes " + b + "] do not "
                    + "form a heat map ('heatmap_cyxhw' needs centre logits (1, N) and sizes "
                    + "(1, N, 2), N a square number)");
        }
    }

    private static CropConfig parseCrop(JSONObject crop, String where) throws BundleException {
        Set<String> unknown = new TreeSet<String>();
        for (Iterator<String> it = crop.keys(); it.hasNext(); ) {
            unknown.add(it.next());
        }
        for (String k : CropConfig.KEYS) {
            unknown.remove(k);
        }
        if (!unknown.isEmpty()) {
            throw JsonReader.fail("manifest.json: '" + where + "' has unknown keys "
                    + Py.strings(new ArrayList<String>(unknown)) + " (known: ['margin', 'square', "
                    + "'min_size', 'scales'])");
        }
        try {
            return CropConfig.fromJson(crop);
        } catch (IllegalArgumentException e) {
            throw JsonReader.fail("manifest.json: '" + where + "' is invalid (" + e.getMessage()
                    + ")");
        }
    }

    private static PredictorEntry parsePredictor(Object obj) throws BundleException {
        String where = "predictor";
        JsonReader r = new JsonReader(obj, where);
        String file = modelFile(r, where);
        int resolution = (int) Math.min(r.integer("resolution", 1), Integer.MAX_VALUE);
        long macs = r.integer("macs", 0);
        String boxFormat = r.choice("box_format", Boxes.FORMATS, JsonReader.joined(Boxes.FORMATS));
        TensorSpec in = parseTensorSpec(r.get("input"), where + ".input");
        checkImageInput(in, resolution, where);
        TensorSpec[] outputs = parseBoxOutputs(r, where, boxFormat);
        CropConfig cropConfig = parseCrop(r.mapping("crop"), "predictor.crop");
        JSONObject metrics = r.mapping("metrics");
        return new PredictorEntry(file, resolution, macs, boxFormat, cropConfig, in, outputs,
                metrics);
    }

    /** The version 2 {@code refiner}: a box model like the predictor, its window and passes. */
    private static RefinerEntry parseRefiner(Object obj) throws BundleException {
        String where = "refiner";
        JsonReader r = new JsonReader(obj, where);
        String file = modelFile(r, where);
        int resolution = (int) Math.min(r.integer("resolution", 1), Integer.MAX_VALUE);
        long macs = r.integer("macs", 0);
        String boxFormat = r.choice("box_format", Boxes.FORMATS, JsonReader.joined(Boxes.FORMATS));
        TensorSpec in = parseTensorSpec(r.get("input"), where + ".input");
        checkImageInput(in, resolution, where);
        TensorSpec[] outputs = parseBoxOutputs(r, where, boxFormat);
        CropConfig window = parseCrop(r.mapping("window"), "refiner.window");
        if (!window.square || window.scales().length > 0) {
            StringBuilder scales = new StringBuilder("[");
            for (double v : window.scales()) {
                scales.append(scales.length() == 1 ? "" : ", ").append(Py.number(v));
            }
            throw JsonReader.fail("manifest.json: 'refiner.window' must be square with no scales "
                    + "(the refiner's input is square and its box is mapped back from the exact "
                    + "window), got square=" + (window.square ? "True" : "False") + " scales="
                    + scales + "]");
        }
        int passes = (int) Math.min(r.integer("passes", 1), Integer.MAX_VALUE);
        JSONObject metrics = r.mapping("metrics");
        return new RefinerEntry(file, resolution, macs, passes, boxFormat, window, in, outputs,
                metrics);
    }

    private static TensorSpec[] parseBoxOutputs(JsonReader r, String where, String boxFormat)
            throws BundleException {
        Object rawOut = r.get("output");
        TensorSpec[] outputs;
        JSONArray list = JsonReader.array(rawOut);
        if (list != null) {
            if (list.length() == 0) {
                throw JsonReader.fail("manifest.json: '" + where + ".output' is an empty list");
            }
            outputs = new TensorSpec[list.length()];
            for (int i = 0; i < outputs.length; i++) {
                outputs[i] = parseTensorSpec(list.opt(i), where + ".output[" + i + "]");
            }
        } else {
            outputs = new TensorSpec[] {parseTensorSpec(rawOut, where + ".output")};
        }
        if (Boxes.HEATMAP.equals(boxFormat)) {
            checkHeatmapOutputs(outputs, where);
        } else if (outputs[0].shape[outputs[0].shape.length - 1] != 4) {
            throw JsonReader.fail("manifest.json: '" + where + ".output' shape "
                    + outputs[0].shapeText() + " must end in 4 (one box: ymin, xmin, ymax, xmax)");
        }
        return outputs;
    }

    private static Map<String, FileEntry> parseFiles(JsonReader top) throws BundleException {
        JSONObject raw = top.mapping("files");
        Map<String, FileEntry> files = new LinkedHashMap<String, FileEntry>();
        for (Iterator<String> it = raw.keys(); it.hasNext(); ) {
            String name = it.next();
            checkRelativeName(name, "'files' entry");
            JsonReader fr = new JsonReader(raw.opt(name), "files[" + Py.str(name) + "]");
            Object digest = fr.get("sha256");
            if (!(digest instanceof String) || !SHA256.matcher((String) digest).matches()) {
                throw JsonReader.fail("manifest.json: 'files[" + Py.str(name) + "].sha256' must be "
                        + "64 lowercase hex digits, got " + Py.value(digest));
            }
            files.put(name, new FileEntry((String) digest, fr.integer("bytes", 0)));
        }
        String clash = folderClash(files.keySet(), Collections.<String>emptySet());
        if (clash != null) {
            throw JsonReader.fail("manifest.json: 'files' lists " + Py.str(clash) + " both as a "
                    + "file and as a folder of other files");
        }
        return files;
    }

    /**
     * A name that is also a folder (of another name, or in {@code folders}), the first in
     * sorted order; null if none. A file and a folder of one name cannot both be extracted.
     */
    static String folderClash(Set<String> names, Set<String> folders) {
        Set<String> implied = new HashSet<String>(folders);
        for (String n : names) {
            for (int i = n.indexOf('/'); i >= 0; i = n.indexOf('/', i + 1)) {
                implied.add(n.substring(0, i));
            }
        }
        for (String n : new TreeSet<String>(names)) {
            if (implied.contains(n)) {
                return n;
            }
        }
        return null;
    }
}
