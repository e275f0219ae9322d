package org.tfedge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * Broken bundles the Python reader refuses ({@code refusals.json}): the Java reader must refuse
 * each with the same phrase, and accept the variants Python accepts.
 */
public class RefusalTest {

    /** Applies one case's operations (make_vectors.apply_ops) to a copy of the bundle. */
    private static void apply(File dir, JSONObject manifest, JSONArray ops) throws Exception {
        for (int i = 0; i < ops.length(); i++) {
            JSONObject op = ops.getJSONObject(i);
            String kind = op.getString("op");
            if (kind.equals("set") || kind.equals("delete")) {
                JSONArray path = op.getJSONArray("path");
                Object target = manifest;
                for (int k = 0; k < path.length() - 1; k++) {
                    target = step(target, path.get(k));
                }
                Object last = path.get(path.length() - 1);
                if (kind.equals("set")) {
                    Object value = op.get("value");
                    if (target instanceof JSONObject) {
                        ((JSONObject) target).put((String) last, value);
                    } else {
                        ((JSONArray) target).put(((Number) last).intValue(), value);
                    }
                } else {
                    ((JSONObject) target).remove((String) last);
                }
                continue;
            }
            File f = new File(dir, op.getString("name"));
            if (kind.equals("remove")) {
                f.delete();
            } else if (kind.equals("flip_last_byte")) {
                byte[] data = Files.readAllBytes(f.toPath());
                data[data.length - 1] ^= (byte) 0xff;
                Files.write(f.toPath(), data);
            } else if (kind.equals("append_zero")) {
                byte[] data = Files.readAllBytes(f.toPath());
                Files.write(f.toPath(), java.util.Arrays.copyOf(data, data.length + 1));
            } else if (kind.equals("write")) {
                Files.write(f.toPath(), Base64.getDecoder().decode(op.getString("data")));
            } else if (kind.equals("copy")) {
                Files.write(f.toPath(), Files.readAllBytes(new File(dir, op.getString("from"))
                        .toPath()));
            } else {
                throw new AssertionError("unknown operation " + kind);
            }
        }
    }

    private static Object step(Object target, Object key) throws Exception {
        if (target instanceof JSONObject) {
            return ((JSONObject) target).get((String) key);
        }
        return ((JSONArray) target).get(((Number) key).intValue());
    }

    private static String outcome(File dir) {
        try {
            Bundle.load(new FolderSource(dir));
            return null;
        } catch (BundleException e) {
            return e.getMessage();
        } catch (Exception e) {
            return "unexpected " + e;
        }
    }

    @Test
    public void theSameBundlesAreRefusedWithTheSamePhrase() throws Exception {
        JSONObject refusals = Golden.load("refusals.json");
        JSONArray cases = refusals.getJSONArray("cases");
        byte[] original = Files.readAllBytes(new File(Golden.bundleDir(), "manifest.json").toPath());
        List<String> problems = new ArrayList<String>();
        int refused = 0;
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            File dir = Golden.copyBundle();
            try {
                String text;
                if (c.has("ops")) {
                    JSONObject manifest = new JSONObject(new String(original, StandardCharsets.UTF_8));
                    apply(dir, manifest, c.getJSONArray("ops"));
                    text = Golden.write(manifest);
                } else {
                    text = c.getString("manifest_text");
                }
                Files.write(new File(dir, "manifest.json").toPath(),
                        text.getBytes(StandardCharsets.UTF_8));
                String message = outcome(dir);
                String phrase = c.isNull("phrase") ? null : c.getString("phrase");
                if (phrase == null && message != null) {
                    problems.add(c.getString("name") + ": Python accepts it, Java says: " + message);
                } else if (phrase != null && (message == null || !message.contains(phrase))) {
                    problems.add(c.getString("name") + ": expected '" + phrase + "', Java says: "
                            + message);
                }
                refused += phrase != null ? 1 : 0;
            } finally {
                Golden.deleteTree(dir);
            }
        }
        assertTrue(problems.size() + " of " + cases.length() + " cases differ:\n"
                + String.join("\n", problems), problems.isEmpty());
        assertTrue(refused >= 40);
    }

    @Test
    public void theSameZipsAreRefused() throws Exception {
        JSONArray zips = Golden.load("refusals.json").getJSONArray("zips");
        for (int i = 0; i < zips.length(); i++) {
            JSONObject c = zips.getJSONObject(i);
            byte[] data = Base64.getDecoder().decode(c.getString("zip"));
            try {
                ZipBundle.read(new ByteArrayInputStream(data), c.getString("name") + ".zip");
                fail(c.getString("name") + ": accepted, Python refuses it");
            } catch (BundleException e) {
                assertTrue(c.getString("name") + ": " + e.getMessage(),
                        e.getMessage().contains(c.getString("phrase")));
            }
        }
    }

    private static byte[] zipOfBundle(String folder) throws Exception {
        ByteArrayOutputStream buffer = new ByteArrayOutputStream();
        ZipOutputStream zip = new ZipOutputStream(buffer);
        if (!folder.isEmpty()) {
            zip.putNextEntry(new ZipEntry(folder));
            zip.closeEntry();
            zip.putNextEntry(new ZipEntry("__MACOSX/._manifest.json")); // ignored: outside it
            zip.write(1);
            zip.closeEntry();
        }
        File[] files = Golden.bundleDir().listFiles();
        assertNotNull(files);
        for (File f : files) {
            zip.putNextEntry(new ZipEntry(folder + f.getName()));
            zip.write(Files.readAllBytes(f.toPath()));
            zip.closeEntry();
        }
        zip.close();
        return buffer.toByteArray();
    }

    @Test
    public void aZipOfTheBundleLoadsWithItsFilesAtTheTopOrInOneFolder() throws Exception {
        for (String folder : new String[] {"", "mybundle/"}) {
            MemorySource source = ZipBundle.read(new ByteArrayInputStream(zipOfBundle(folder)),
                    "bundle.zip");
            Bundle b = Bundle.load(source);
            assertEquals(3, b.manifest.stages.size());
            assertEquals("heatmap_cyxhw", b.manifest.predictor.boxFormat);
            assertEquals(6, source.files().size());
        }
    }

    @Test
    public void version3IsRefusedUntilTheReaderKnowsIt() throws Exception {
        JSONObject m = new JSONObject(new String(Files.readAllBytes(
                new File(Golden.bundleDir(), "manifest.json").toPath()), StandardCharsets.UTF_8));
        m.put("version", 3);
        try {
            Manifest.parse(Golden.write(m).getBytes(StandardCharsets.UTF_8));
            fail("a version 3 manifest was accepted");
        } catch (BundleException e) {
            assertEquals("bundle version 3 is newer than this tfedge supports (2): upgrade the "
                    + "tfedge app", e.getMessage());
        }
        m.put("version", 2); // version 2 without a refiner: nothing a version 2 reader misreads
        assertEquals(2, Manifest.parse(Golden.write(m).getBytes(StandardCharsets.UTF_8)).version);
    }

    @Test
    public void aManifestIsOneJsonDocument() throws Exception {
        byte[] original = Files.readAllBytes(new File(Golden.bundleDir(), "manifest.json").toPath());
        String text = new String(original, StandardCharsets.UTF_8);
        Manifest.parse((text + "\n\n").getBytes(StandardCharsets.UTF_8)); // trailing space is fine
        try {
            Manifest.parse((text + "{}").getBytes(StandardCharsets.UTF_8));
            fail("two JSON documents were accepted");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith("manifest.json is not valid JSON"));
        }
        try {
            Manifest.parse(new byte[] {'{', (byte) 0xff, '}'});
            fail("a manifest that is not UTF-8 was accepted");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith("manifest.json is not valid JSON"));
        }
    }

    @Test
    public void aFolderWithoutManifestIsNotABundle() throws Exception {
        File dir = Files.createTempDirectory("empty").toFile();
        try {
            Bundle.load(new FolderSource(dir));
            fail("an empty folder was accepted");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().endsWith("no manifest.json: this is not a "
                    + "tfedge bundle folder; build one with tfedge-convert"));
        } finally {
            Golden.deleteTree(dir);
        }
    }
    @Test
    public void aLinkLeadingOutOfTheFolderIsRefused() throws Exception {
        File dir = Golden.copyBundle();
        File outside = File.createTempFile("outside", ".txt");
        try {
            File labels = new File(dir, "labels.txt");
            Files.write(outside.toPath(), Files.readAllBytes(labels.toPath()));
            labels.delete();
            Files.createSymbolicLink(labels.toPath(), outside.toPath());
            String message = outcome(dir);
            assertNotNull("a link out of the bundle was accepted", message);
            assertTrue(message, message.startsWith("labels.txt: links outside the bundle folder"));
        } finally {
            Golden.deleteTree(dir);
            outside.delete();
        }
    }

    @Test
    public void zipSizeLimitsAreEnforcedWhileReading() throws Exception {
        byte[] zip = zipOfBundle("");
        try {
            ZipBundle.read(new ByteArrayInputStream(zip), "b.zip", 4000, 1L << 30);
            fail("a model over the per-file limit was read");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("over the 4000 bytes limit per file"));
        }
        try {
            ZipBundle.read(new ByteArrayInputStream(zip), "b.zip", 1L << 20, 10000);
            fail("a zip over the total limit was read");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith("b.zip: the zip holds over 10000 "
                    + "bytes uncompressed"));
        }
        try {
            ZipBundle.read(new ByteArrayInputStream(new byte[] {1, 2, 3}), "junk.zip");
            fail("a file that is not a zip was read as an empty bundle");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith("junk.zip: no manifest.json"));
        }
    }
}
