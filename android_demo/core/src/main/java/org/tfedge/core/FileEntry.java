package org.tfedge.core;

/** Size and SHA-256 (lowercase hex) of one bundle file, as {@code files} lists it. */
public final class FileEntry {
    public final String sha256;
    public final long bytes;

    FileEntry(String sha256, long bytes) {
        this.sha256 = sha256;
        this.bytes = bytes;
    }
}
