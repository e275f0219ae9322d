package org.tfedge.demo;

import android.content.res.AssetFileDescriptor;
import android.content.res.AssetManager;

import java.io.ByteArrayOutputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;

import org.tfedge.core.BundleSource;

/** A bundle folder inside the APK's assets ({@code assets/bundle/manifest.json}, ...). */
final class AssetSource implements BundleSource {
    static final String FOLDER = "bundle";

    private final AssetManager assets;
    private final String folder;

    AssetSource(AssetManager assets, String folder) {
        this.assets = assets;
        this.folder = folder;
    }

    /** Whether the APK holds a bundle at all. */
    boolean exists() {
        try {
            return size("manifest.json") >= 0;
        } catch (IOException e) {
            return false;
        }
    }

    @Override
    public long size(String name) throws IOException {
        try {
            // Uncompressed assets (noCompress 'tflite') report their length directly.
            AssetFileDescriptor fd = assets.openFd(folder + "/" + name);
            long length = fd.getLength();
            fd.close();
            return length;
        } catch (FileNotFoundException compressedOrMissing) {
            try {
                return read(name).length;
            } catch (FileNotFoundException missing) {
                return -1;
            }
        }
    }

    @Override
    public byte[] read(String name) throws IOException {
        InputStream in = assets.open(folder + "/" + name, AssetManager.ACCESS_STREAMING);
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[1 << 16];
            int n;
            while ((n = in.read(buffer)) > 0) {
                out.write(buffer, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    @Override
    public String describe() {
        return "assets/" + folder;
    }
}
