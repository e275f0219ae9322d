package org.tfedge.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;

/** A bundle folder on disk. A file whose real path leaves the folder (a link) is refused. */
public final class FolderSource implements BundleSource {
    private final File root;

    public FolderSource(File root) {
        this.root = root;
    }

    private File file(String name) throws IOException, BundleException {
        File f = new File(root, name);
        String realRoot = root.getCanonicalPath();
        String real = f.getCanonicalPath();
        if (!real.equals(realRoot) && !real.startsWith(realRoot + File.separator)) {
            throw new BundleException(name + ": links outside the bundle folder: bundles hold "
                    + "plain files only; " + JsonReader.REBUILD);
        }
        return f;
    }

    @Override
    public long size(String name) throws IOException, BundleException {
        File f = file(name);
        return f.isFile() ? f.length() : -1;
    }

    @Override
    public byte[] read(String name) throws IOException, BundleException {
        InputStream in = new FileInputStream(file(name));
        try {
            return readAll(in, Long.MAX_VALUE, name);
        } finally {
            in.close();
        }
    }

    @Override
    public String describe() {
        return root.getPath();
    }

    /**
     * Every byte of {@code in}; more than {@code limit} bytes is refused, naming {@code name}
     * (with {@code name} null: null is returned instead, for the caller's own message).
     */
    static byte[] readAll(InputStream in, long limit, String name)
            throws IOException, BundleException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = in.read(buffer)) > 0) {
            total += n;
            if (total > limit) {
                if (name == null) {
                    return null;
                }
                throw new BundleException(name + ": over the " + Bundle.human(limit)
                        + " limit per file: raise the limit if the model really is this big");
            }
            out.write(buffer, 0, n);
        }
        return out.toByteArray();
    }
}
