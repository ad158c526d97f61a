package jdiffusion.pipeline;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.CompletableFuture;

/**
 * The "Model hash" of A1111 metadata: the first 10 hex digits of the file's SHA-256. Hashing a 7 GB file takes
 * seconds, so it runs in the background while the image is generated.
 */
public final class ModelHash {
    private ModelHash() {
    }

    public static String shortSha256(Path file) throws IOException {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK lacks SHA-256", e);
        }
        jdiffusion.io.RegularFiles.require(file);
        byte[] buf = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buf)) > 0; ) {
                sha.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(sha.digest()).substring(0, 10);
    }

    /** Starts hashing on a daemon thread; the future holds null when the file cannot be read. */
    public static CompletableFuture<String> background(Path file) {
        CompletableFuture<String> f = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                f.complete(shortSha256(file));
            } catch (IOException | RuntimeException e) {
                f.complete(null);
            }
        }, "model-hash");
        t.setDaemon(true);
        t.start();
        return f;
    }
}
