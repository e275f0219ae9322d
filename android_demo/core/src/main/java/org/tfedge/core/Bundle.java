package org.tfedge.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A loaded, checked bundle: its {@link Manifest} and where its files are.
 *
 * <p>{@link #load} does what {@code tfedge.bundle.load_bundle} does after reading a folder:
 * the manifest is checked, every listed file must exist with the listed size and SHA-256, and
 * {@code labels.txt} must hold the manifest's labels. Model tensors are checked against the
 * manifest when an {@link InferenceEngine} loads them ({@link EdgePipeline}).
 */
public final class Bundle {
    public static final long DEFAULT_MAX_FILE_BYTES = 512L << 20;

    public final Manifest manifest;
    public final BundleSource source;

    private Bundle(Manifest manifest, BundleSource source) {
        this.manifest = manifest;
        this.source = source;
    }

    public static Bundle load(BundleSource source) throws IOException, BundleException {
        return load(source, DEFAULT_MAX_FILE_BYTES);
    }

    public static Bundle load(BundleSource source, long maxFileBytes)
            throws IOException, BundleException {
        long manifestSize = source.size(Manifest.MANIFEST_NAME);
        if (manifestSize < 0) {
            throw new BundleException(source.describe() + ": no manifest.json: this is not a "
                    + "tfedge bundle folder; build one with tfedge-convert");
        }
        if (manifestSize > Manifest.MAX_MANIFEST_BYTES) {
            throw new BundleException("manifest.json is " + human(manifestSize) + ", over the "
                    + human(Manifest.MAX_MANIFEST_BYTES) + " limit: " + JsonReader.REBUILD);
        }
        Manifest manifest = Manifest.parse(source.read(Manifest.MANIFEST_NAME));
        for (Map.Entry<String, FileEntry> e : manifest.files.entrySet()) {
            checkFile(source, e.getKey(), e.getValue(), maxFileBytes);
        }
        String labelsText = new String(source.read(manifest.labelsFile), StandardCharsets.UTF_8);
        if (!splitLines(labelsText).equals(manifest.labels)) {
            throw new BundleException(manifest.labelsFile + " and the labels in manifest.json "
                    + "disagree: " + JsonReader.REBUILD);
        }
        return new Bundle(manifest, source);
    }

    private static void checkFile(BundleSource source, String name, FileEntry entry,
                                  long maxFileBytes) throws IOException, BundleException {
        long size = source.size(name);
        if (size < 0) {
            throw new BundleException(name + ": listed in manifest.json but missing from the "
                    + "bundle: copy the whole bundle folder (or zip), or rebuild it with "
                    + "tfedge-convert");
        }
        if (size > maxFileBytes) {
            throw new BundleException(name + ": " + human(size) + " is over the "
                    + human(maxFileBytes) + " limit per file: raise the limit if the model "
                    + "really is this big");
        }
        if (size != entry.bytes) {
            throw new BundleException(name + ": " + size + " bytes but manifest.json says "
                    + entry.bytes + " (file altered or truncated): " + JsonReader.REBUILD);
        }
        if (!sha256(source.read(name)).equals(entry.sha256)) {
            throw new BundleException(name + ": SHA-256 mismatch (file altered or corrupt): "
                    + JsonReader.REBUILD);
        }
    }

    /** The bytes of a model file of this bundle. */
    public byte[] readModel(String file) throws IOException, BundleException {
        return source.read(file);
    }

    /** Lowercase hex SHA-256. */
    public static String sha256(byte[] data) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(data);
            StringBuilder b = new StringBuilder();
            for (byte x : digest) {
                b.append(String.format(Locale.ROOT, "%02x", x & 0xff));
            }
            return b.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this Java runtime", e);
        }
    }

    /** Python's {@code str.splitlines()} (no empty last line for a trailing break). */
    static List<String> splitLines(String text) {
        List<String> lines = new ArrayList<String>();
        int start = 0;
        int i = 0;
        while (i < text.length()) {
            char c = text.charAt(i);
            if (Manifest.isLineBreak(c)) {
                lines.add(text.substring(start, i));
                if (c == '\r' && i + 1 < text.length() && text.charAt(i + 1) == '\n') {
                    i++;
                }
                start = i + 1;
            }
            i++;
        }
        if (start < text.length()) {
            lines.add(text.substring(start));
        }
        return lines;
    }

    static String human(long count) {
        return count >= (1L << 20) ? String.format(Locale.ROOT, "%.1f MiB", count / 1048576.0)
                : count + " bytes";
    }
}
