package org.tfedge.core;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipInputStream;

/**
 * A bundle {@code .zip} read from a stream (a file the user picked) into memory, checked
 * entry by entry as the Python reader checks zips: no absolute names, no {@code ..}, no
 * backslashes, no duplicates, no encrypted entries, size limits; the files at the top of the
 * archive or inside one top-level folder. Nothing is written to disk, so an entry cannot
 * land outside the bundle (a symbolic-link entry would be read as a small file, and then fail
 * its SHA-256).
 */
public final class ZipBundle {
    public static final long DEFAULT_MAX_FILE_BYTES = 512L << 20;
    public static final long DEFAULT_MAX_TOTAL_BYTES = 2L << 30;
    private static final Pattern DRIVE = Pattern.compile("^[A-Za-z]:.*", Pattern.DOTALL);
    private static final String REZIP = "rebuild the zip with tfedge-convert --zip";
    /** NAME_MAX on Linux, macOS and Android: a longer name part cannot be extracted. */
    static final int MAX_FS_NAME_BYTES = 255;

    private ZipBundle() {
    }

    public static MemorySource read(InputStream in, String description)
            throws IOException, BundleException {
        return read(in, description, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES);
    }

    static void checkEntryName(String name) throws BundleException {
        String bad = null;
        if (name.isEmpty()) {
            bad = "has an empty name";
        } else if (name.indexOf('\\') >= 0) {
            bad = "contains a backslash";
        } else if (name.startsWith("/") || DRIVE.matcher(name).matches()) {
            bad = "is an absolute path";
        } else {
            for (String part : name.split("/", -1)) {
                if (part.equals("..")) {
                    bad = "climbs out of the bundle with '..'";
                }
            }
            if (bad == null && name.indexOf('\0') >= 0) {
                bad = "contains a NUL byte";
            }
            for (String part : name.split("/", -1)) {
                if (bad == null
                        && part.getBytes(StandardCharsets.UTF_8).length > MAX_FS_NAME_BYTES) {
                    bad = "has a part longer than the " + MAX_FS_NAME_BYTES
                            + " bytes file systems allow";
                }
            }
        }
        if (bad != null) {
            throw new BundleException("zip entry " + Py.str(name) + " " + bad + " and could write "
                    + "outside the bundle: refusing it; " + REZIP);
        }
    }

    public static MemorySource read(InputStream in, String description, long maxFileBytes,
                                    long maxTotalBytes) throws IOException, BundleException {
        Map<String, byte[]> entries = new LinkedHashMap<String, byte[]>();
        Set<String> seen = new HashSet<String>();
        Set<String> folders = new HashSet<String>();
        long total = 0;
        ZipInputStream zip = new ZipInputStream(in);
        try {
            ZipEntry entry;
            while ((entry = nextEntry(zip, description)) != null) {
                String name = entry.getName();
                checkEntryName(name);
                String key = stripSlashes(name);
                if (!seen.add(key)) {
                    throw new BundleException("zip entry " + Py.str(name) + " appears twice (an "
                            + "archive could hide a file that way): " + JsonReader.REBUILD + " --zip");
                }
                if (entry.isDirectory()) {
                    folders.add(key);
                    continue;
                }
                boolean manifest = name.equals(Manifest.MANIFEST_NAME)
                        || name.endsWith("/" + Manifest.MANIFEST_NAME);
                byte[] data;
                try {
                    if (manifest) {
                        data = FolderSource.readAll(zip, Manifest.MAX_MANIFEST_BYTES, null);
                        if (data == null) {
                            throw new BundleException("zip entry " + Py.str(name) + " is over "
                                    + "the " + Bundle.human(Manifest.MAX_MANIFEST_BYTES) + " a "
                                    + "manifest may be: this is not a tfedge bundle; "
                                    + JsonReader.REBUILD + " --zip");
                        }
                    } else {
                        data = FolderSource.readAll(zip, maxFileBytes, "zip entry " + Py.str(name));
                    }
                } catch (ZipException e) {
                    throw new BundleException("zip entry " + Py.str(name) + " is corrupt or "
                            + "encrypted (" + e.getMessage() + "): " + JsonReader.REBUILD
                            + " --zip", e);
                }
                total += data.length;
                if (total > maxTotalBytes) {
                    throw new BundleException(description + ": the zip holds over "
                            + Bundle.human(maxTotalBytes) + " uncompressed: raise the limit if "
                            + "the bundle really is this big");
                }
                entries.put(name, data);
            }
        } finally {
            zip.close();
        }
        String clash = Manifest.folderClash(entries.keySet(), folders);
        if (clash != null) {
            throw new BundleException("zip entry " + Py.str(clash) + " is both a file and a "
                    + "folder (an archive could hide a file that way): " + JsonReader.REBUILD
                    + " --zip");
        }
        String prefix;
        if (entries.containsKey(Manifest.MANIFEST_NAME)) {
            prefix = "";
        } else {
            Set<String> tops = new TreeSet<String>();
            for (String n : entries.keySet()) {
                if (n.indexOf('/') == n.lastIndexOf('/') && n.indexOf('/') > 0
                        && n.endsWith("/" + Manifest.MANIFEST_NAME)) {
                    tops.add(n.substring(0, n.indexOf('/')));
                }
            }
            if (tops.size() != 1) {
                throw new BundleException(description + ": no manifest.json at the top of the zip "
                        + "(or in one top-level folder): this is not a tfedge bundle; build one "
                        + "with tfedge-convert --zip");
            }
            prefix = tops.iterator().next() + "/";
        }
        Map<String, byte[]> files = new LinkedHashMap<String, byte[]>();
        for (Map.Entry<String, byte[]> e : entries.entrySet()) {
            if (e.getKey().startsWith(prefix)) { // e.g. __MACOSX/ next to the bundle folder
                files.put(e.getKey().substring(prefix.length()), e.getValue());
            }
        }
        return new MemorySource(files, description);
    }

    private static ZipEntry nextEntry(ZipInputStream zip, String description)
            throws IOException, BundleException {
        try {
            return zip.getNextEntry();
        } catch (ZipException e) {
            String why = String.valueOf(e.getMessage());
            if (why.contains("encrypted")) { // the stream has not told the entry's name yet
                throw new BundleException(description + ": a zip entry is encrypted: bundles are "
                        + "not encrypted; " + JsonReader.REBUILD + " --zip", e);
            }
            throw new BundleException(description + ": not a readable zip file (" + why
                    + "): " + JsonReader.REBUILD + " --zip", e);
        }
    }

    private static String stripSlashes(String name) {
        int end = name.length();
        while (end > 0 && name.charAt(end - 1) == '/') {
            end--;
        }
        return name.substring(0, end);
    }

    /** Names of {@code files}, for messages. */
    static List<String> names(Map<String, byte[]> files) {
        return new ArrayList<String>(files.keySet());
    }
}
