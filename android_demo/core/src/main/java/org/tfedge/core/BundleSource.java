package org.tfedge.core;

import java.io.IOException;

/**
 * Where a bundle's files are: a folder ({@link FolderSource}), the bytes of an unpacked zip
 * ({@link MemorySource}, {@link ZipBundle}), or on Android the app's assets.
 */
public interface BundleSource {
    /** Size in bytes of the regular file {@code name} (a '/'-separated relative name), or -1
     * when there is none. A file that leads outside the bundle is refused. */
    long size(String name) throws IOException, BundleException;

    /** The content of {@code name}. */
    byte[] read(String name) throws IOException, BundleException;

    /** Where the bundle is, for messages. */
    String describe();
}
