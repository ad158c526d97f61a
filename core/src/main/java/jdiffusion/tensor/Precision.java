package jdiffusion.tensor;

import java.util.Locale;

/**
 * The arithmetic precision of GEMMs and convolutions, chosen when a model is loaded (layers pack their weights for
 * one path at construction). FP32 is the default and the golden reference. BF16 runs the products on the CPU's bf16
 * dot-product units through oneDNN, as PyTorch's CPU autocast does: weights stored as bf16, activations rounded to
 * bf16 at the product's input, fp32 accumulation and fp32 output; attention's two products likewise (Q K^T and the
 * probabilities times V, see {@link Bf16Attention}; {@code -Djdiffusion.bf16.attention=off} keeps them fp32); norms,
 * softmax and residuals stay fp32.
 * Where the native path is unavailable (library not loadable, CPU without avx512_bf16, or forced off with
 * {@code -Djdiffusion.bf16=off} / {@code JDIFFUSION_BF16=off}) BF16 falls back to the fp32 Java kernels.
 *
 * <p>The precision a layer is built with is {@link #current()}: the process default ({@link #setDefault}, what the
 * command line's {@code --precision} sets) unless the building thread is inside a {@link #scope}.
 */
public enum Precision {
    FP32,
    BF16;

    private static volatile Precision defaultPrecision = FP32;
    private static final ThreadLocal<Precision> SCOPED = new ThreadLocal<>();
    private static volatile boolean warned;

    /** "fp32" or "bf16" (any case); a one-line IllegalArgumentException otherwise. */
    public static Precision parse(String s) {
        if (s != null) {
            switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "fp32", "f32", "float32" -> {
                    return FP32;
                }
                case "bf16", "bfloat16" -> {
                    return BF16;
                }
                default -> {
                }
            }
        }
        throw new IllegalArgumentException("precision must be fp32 or bf16, got " + s);
    }

    /** The name on the command line: fp32 or bf16. */
    public String flag() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The precision layers built now use. */
    public static Precision current() {
        Precision p = SCOPED.get();
        return p != null ? p : defaultPrecision;
    }

    /** Sets the process-wide precision for models loaded from now on (BF16 warns once if it cannot run). */
    public static void setDefault(Precision p) {
        defaultPrecision = p == null ? FP32 : p;
        if (defaultPrecision == BF16) {
            warnIfUnavailable();
        }
    }

    public static Precision getDefault() {
        return defaultPrecision;
    }

    /** Models built by this thread until the scope is closed use p (the previous choice comes back at close). */
    public static Scope scope(Precision p) {
        Precision previous = SCOPED.get();
        SCOPED.set(p);
        return () -> {
            if (previous == null) {
                SCOPED.remove();
            } else {
                SCOPED.set(previous);
            }
        };
    }

    /** A scope to close with try-with-resources. */
    public interface Scope extends AutoCloseable {
        @Override
        void close();
    }

    /** Whether layers built now run on the native bf16 kernels. */
    static boolean nativeBf16Now() {
        return current() == BF16 && OneDnn.usable();
    }

    /** What runs for p: "bf16 via oneDNN 3.8.1, isa ...", "fp32 Java (bf16 unavailable: why)" or "fp32 Java". */
    public static String describe(Precision p) {
        if (p == BF16) {
            return OneDnn.usable() ? "bf16 via " + OneDnn.description()
                    : "fp32 Java (bf16 unavailable: " + OneDnn.unavailableReason() + ")";
        }
        return "fp32 Java";
    }

    /** One line on stderr, once per process, when bf16 was asked for but falls back to fp32. */
    public static void warnIfUnavailable() {
        if (!OneDnn.usable() && !warned) {
            warned = true;
            System.err.println("jdiffusion: warning: --precision bf16 unavailable (" + OneDnn.unavailableReason()
                    + "), running fp32");
        }
    }
}
