package org.tfedge.core;

/**
 * A bundle that cannot be used: a refused manifest, a missing or altered file, a model
 * whose tensors disagree with the manifest. The message is one line naming the problem
 * and the fix, worded as the Python reader's ({@code tfedge.bundle.load_bundle}).
 */
public class BundleException extends Exception {
    private static final long serialVersionUID = 1L;

    public BundleException(String message) {
        super(message);
    }

    public BundleException(String message, Throwable cause) {
        super(message, cause);
    }
}
