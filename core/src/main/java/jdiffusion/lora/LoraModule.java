package jdiffusion.lora;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;
import jdiffusion.io.SafeTensors;
import jdiffusion.tensor.Parallel;

/**
 * One adapted module of a LoRA file, as stored (before it is matched against a model): its tensors by role, the
 * shape of the weight change it makes ({@link #rows()} x {@link #cols()}, a conv kernel's in x kh x kw flattened into
 * cols) and the factor alpha / rank that scales it.
 *
 * <p>Scaling rules (those of kohya's and LyCORIS' loaders, which ComfyUI follows): LoRA and LoHa scale by
 * alpha / rank, rank = the down matrix's first dimension, missing alpha = rank (factor 1). LoKr scales by
 * alpha / rank only when one of its Kronecker factors is itself low-rank (lokr_w1_a/b or lokr_w2_a/b), else by 1.
 */
public final class LoraModule {
    /** What kind of weight change the module stores. */
    public enum Kind {
        LORA("LoRA"), LOHA("LoHa"), LOKR("LoKr"), FULL("full diff");

        private final String label;

        Kind(String label) {
            this.label = label;
        }

        public String label() {
            return label;
        }
    }

    /** A tensor's role inside a module, with the key suffixes that name it in the known formats. */
    enum Role {
        DOWN, UP, MID, ALPHA, DORA_SCALE,
        HADA_W1_A, HADA_W1_B, HADA_W2_A, HADA_W2_B, HADA_T1, HADA_T2,
        LOKR_W1, LOKR_W1_A, LOKR_W1_B, LOKR_W2, LOKR_W2_A, LOKR_W2_B, LOKR_T2,
        DIFF
    }

    /** Below this many multiply-adds a LoRA product is not worth spreading over threads. */
    private static final long PARALLEL_WORK = 1 << 20;

    private final SafeTensors file;
    private final String name;
    private final Component component;
    private final String path;
    private final String style;
    private final Kind kind;
    private final Map<Role, String> keys;
    private final Float alpha;
    private final int rank;
    private final int rows;
    private final int cols;
    private final float alphaScale;

    private LoraModule(SafeTensors file, String name, Component component, String path, String style, Kind kind,
                       Map<Role, String> keys, Float alpha, int rank, int rows, int cols, float alphaScale) {
        this.file = file;
        this.name = name;
        this.component = component;
        this.path = path;
        this.style = style;
        this.kind = kind;
        this.keys = keys;
        this.alpha = alpha;
        this.rank = rank;
        this.rows = rows;
        this.cols = cols;
        this.alphaScale = alphaScale;
    }

    /** The module's name as the file spells it (its keys without the role suffix). */
    public String name() {
        return name;
    }

    public Component component() {
        return component;
    }

    /** The module path inside its component, in the file's spelling (dots or underscores, diffusers or LDM names). */
    public String path() {
        return path;
    }

    /** The naming convention: "kohya", "PEFT", "diffusers", "ComfyUI" or "LyCORIS". */
    public String style() {
        return style;
    }

    public Kind kind() {
        return kind;
    }

    /** Every key of the file this module consumes. */
    public List<String> keys() {
        return List.copyOf(keys.values());
    }

    /** The stored alpha, or null when the file has none. */
    public Float alpha() {
        return alpha;
    }

    /** The rank (0 for a full diff or an undecomposed LoKr). */
    public int rank() {
        return rank;
    }

    /** Output rows of the weight change (a weight's first dimension). */
    public int rows() {
        return rows;
    }

    /** Elements per row of the weight change (in, or in x kh x kw for a conv). */
    public int cols() {
        return cols;
    }

    /** alpha / rank (or 1, see the class comment): the change is strength x alphaScale x delta. */
    public float alphaScale() {
        return alphaScale;
    }

    /**
     * Adds strength x alphaScale x delta to weight[offset .. offset + rows*cols), row-major. A LoRA is added as
     * rank-many scaled rows of down per output row, so no rows x cols temporary is built.
     */
    void addTo(float[] weight, int offset, float strength) {
        float factor = strength * alphaScale;
        if (kind == Kind.LORA) {
            float[] up = read(Role.UP);
            float[] down = effectiveDown();
            int r = rank;
            IntConsumer addRow = p -> {
                int row = offset + p * cols;
                for (int i = 0; i < r; i++) {
                    float c = factor * up[p * r + i];
                    int d = i * cols;
                    for (int k = 0; k < cols; k++) {
                        weight[row + k] += c * down[d + k];
                    }
                }
            };
            if ((long) rows * cols * r < PARALLEL_WORK) {
                for (int p = 0; p < rows; p++) {
                    addRow.accept(p);
                }
            } else {
                Parallel.forRange(rows, addRow);
            }
            return;
        }
        float[] delta = delta();
        for (int k = 0; k < delta.length; k++) {
            weight[offset + k] += factor * delta[k];
        }
    }

    /** The unscaled weight change, rows x cols row-major (for a LoRA: up @ down). */
    public float[] delta() {
        return switch (kind) {
            case LORA -> Tensors.matmul(read(Role.UP), effectiveDown(), rows, rank, cols);
            case LOHA -> lohaDelta();
            case LOKR -> lokrDelta();
            case FULL -> read(Role.DIFF);
        };
    }

    /** down, or for a LoCon with a Tucker core (lora_mid) the core contracted with down: [rank, in*kh*kw]. */
    private float[] effectiveDown() {
        if (!keys.containsKey(Role.MID)) {
            return read(Role.DOWN);
        }
        return Tensors.tuckerCore(read(Role.MID), dims(Role.MID), read(Role.DOWN), dims(Role.DOWN));
    }

    private float[] lohaDelta() {
        float[] m1 = lohaFactor(Role.HADA_T1, Role.HADA_W1_A, Role.HADA_W1_B);
        float[] m2 = lohaFactor(Role.HADA_T2, Role.HADA_W2_A, Role.HADA_W2_B);
        for (int i = 0; i < m1.length; i++) {
            m1[i] *= m2[i];
        }
        return m1;
    }

    private float[] lohaFactor(Role t, Role a, Role b) {
        if (keys.containsKey(t)) {
            return Tensors.tucker(read(t), dims(t), read(b), dims(b), read(a), dims(a));
        }
        int r = dims(b)[0];
        return Tensors.matmul(read(a), read(b), rows, r, cols);
    }

    private float[] lokrDelta() {
        int[] w1 = lokrW1Shape();
        int[] w2 = lokrW2Shape();
        float[] f1 = keys.containsKey(Role.LOKR_W1) ? read(Role.LOKR_W1)
                : Tensors.matmul(read(Role.LOKR_W1_A), read(Role.LOKR_W1_B), w1[0], dims(Role.LOKR_W1_B)[0], w1[1]);
        float[] f2;
        if (keys.containsKey(Role.LOKR_W2)) {
            f2 = read(Role.LOKR_W2);
        } else if (keys.containsKey(Role.LOKR_T2)) {
            f2 = Tensors.tucker(read(Role.LOKR_T2), dims(Role.LOKR_T2), read(Role.LOKR_W2_B), dims(Role.LOKR_W2_B),
                    read(Role.LOKR_W2_A), dims(Role.LOKR_W2_A));
        } else {
            f2 = Tensors.matmul(read(Role.LOKR_W2_A), read(Role.LOKR_W2_B), w2[0], dims(Role.LOKR_W2_B)[0], w2[1]);
        }
        return Tensors.kron(f1, w1[0], w1[1], f2, w2[0], w2[1]);
    }

    /** LoKr w1 as [a1, b1]. */
    private int[] lokrW1Shape() {
        if (keys.containsKey(Role.LOKR_W1)) {
            int[] d = dims(Role.LOKR_W1);
            return new int[] {d[0], Tensors.numel(d, 1)};
        }
        return new int[] {dims(Role.LOKR_W1_A)[0], Tensors.numel(dims(Role.LOKR_W1_B), 1)};
    }

    /** LoKr w2 as [a2, b2*kh*kw]. */
    private int[] lokrW2Shape() {
        if (keys.containsKey(Role.LOKR_W2)) {
            int[] d = dims(Role.LOKR_W2);
            return new int[] {d[0], Tensors.numel(d, 1)};
        }
        if (keys.containsKey(Role.LOKR_T2)) {
            int[] t = dims(Role.LOKR_T2);
            return new int[] {dims(Role.LOKR_W2_A)[1], dims(Role.LOKR_W2_B)[1] * Tensors.numel(t, 2)};
        }
        return new int[] {dims(Role.LOKR_W2_A)[0], Tensors.numel(dims(Role.LOKR_W2_B), 1)};
    }

    private float[] read(Role role) {
        return file.floats(keys.get(role));
    }

    private int[] dims(Role role) {
        return file.info(keys.get(role)).dims();
    }

    @Override
    public String toString() {
        return name + " (" + kind.label() + ", " + rows + "x" + cols + ")";
    }

    // ---- construction and validation ----

    /** Builds a module from its tensors, checking that their shapes are consistent. */
    static LoraModule create(SafeTensors file, String name, Component component, String path, String style,
                             Map<Role, String> keys) throws LoraException {
        Shapes s = new Shapes(file, name, keys);
        for (String key : keys.values()) {
            if (!file.info(key).dtype().isFloat()) {
                throw s.error("tensor '" + key + "' is " + file.info(key).dtype() + ", not a float type");
            }
        }
        if (keys.containsKey(Role.DORA_SCALE)) {
            throw s.error("DoRA (dora_scale) is not supported");
        }
        Float alpha = keys.containsKey(Role.ALPHA) ? s.scalar(Role.ALPHA) : null;
        Map<Role, String> frozen = Collections.unmodifiableMap(new EnumMap<>(keys));
        if (keys.containsKey(Role.HADA_W1_A) || keys.containsKey(Role.HADA_W1_B) || keys.containsKey(Role.HADA_W2_A)
                || keys.containsKey(Role.HADA_W2_B)) {
            return loha(file, name, component, path, frozen, alpha, s);
        }
        if (keys.keySet().stream().anyMatch(r -> r.name().startsWith("LOKR"))) {
            return lokr(file, name, component, path, frozen, alpha, s);
        }
        if (keys.containsKey(Role.DIFF)) {
            int[] d = s.dims(Role.DIFF);
            return new LoraModule(file, name, component, path, style, Kind.FULL, frozen, alpha, 0, d[0],
                    Tensors.numel(d, 1), 1f);
        }
        return lora(file, name, component, path, style, frozen, alpha, s);
    }

    private static LoraModule lora(SafeTensors file, String name, Component component, String path, String style,
                                   Map<Role, String> keys, Float alpha, Shapes s) throws LoraException {
        if (!keys.containsKey(Role.UP) || !keys.containsKey(Role.DOWN)) {
            throw s.error(keys.containsKey(Role.UP) ? "has an up (lora_up / lora_B) matrix but no down (lora_down / lora_A)"
                    : keys.containsKey(Role.DOWN) ? "has a down (lora_down / lora_A) matrix but no up (lora_up / lora_B)"
                    : "has only " + keys.keySet() + ", no LoRA matrices");
        }
        int[] up = s.dims(Role.UP);
        int[] down = s.dims(Role.DOWN);
        if (up.length < 2 || down.length < 2) {
            throw s.error("up " + s.shape(Role.UP) + " and down " + s.shape(Role.DOWN) + " must be matrices or conv kernels");
        }
        if (Tensors.numel(up, 2) != 1) {
            throw s.error("up has shape " + s.shape(Role.UP) + "; only 1x1 up kernels are supported");
        }
        int rank = down[0];
        if (up[1] != rank) {
            throw s.error("rank mismatch: up " + s.shape(Role.UP) + " has rank " + up[1] + " but down "
                    + s.shape(Role.DOWN) + " has rank " + rank);
        }
        int cols = Tensors.numel(down, 1);
        if (keys.containsKey(Role.MID)) {
            int[] mid = s.dims(Role.MID);
            if (mid.length != 4 || mid[0] != up[1] || mid[1] != rank || Tensors.numel(down, 2) != 1) {
                throw s.error("lora_mid " + s.shape(Role.MID) + " does not fit up " + s.shape(Role.UP) + " and down "
                        + s.shape(Role.DOWN));
            }
            cols = down[1] * Tensors.numel(mid, 2);
        }
        if (rank == 0) {
            throw s.error("has rank 0");
        }
        float scale = alpha == null ? 1f : alpha / rank;
        return new LoraModule(file, name, component, path, style, Kind.LORA, keys, alpha, rank, up[0], cols, scale);
    }

    private static LoraModule loha(SafeTensors file, String name, Component component, String path,
                                   Map<Role, String> keys, Float alpha, Shapes s) throws LoraException {
        s.require(Role.HADA_W1_A, Role.HADA_W1_B, Role.HADA_W2_A, Role.HADA_W2_B);
        boolean tucker = keys.containsKey(Role.HADA_T1) || keys.containsKey(Role.HADA_T2);
        if (tucker) {
            s.require(Role.HADA_T1, Role.HADA_T2);
        }
        int[] f1 = s.lohaFactorShape(Role.HADA_T1, Role.HADA_W1_A, Role.HADA_W1_B, tucker);
        int[] f2 = s.lohaFactorShape(Role.HADA_T2, Role.HADA_W2_A, Role.HADA_W2_B, tucker);
        if (f1[0] != f2[0] || f1[1] != f2[1]) {
            throw s.error("LoHa factors have different shapes: w1 gives " + f1[0] + "x" + f1[1] + ", w2 gives "
                    + f2[0] + "x" + f2[1]);
        }
        int rank = s.dims(Role.HADA_W1_B)[0];
        float scale = alpha == null ? 1f : alpha / rank;
        return new LoraModule(file, name, component, path, "LyCORIS", Kind.LOHA, keys, alpha, rank, f1[0], f1[1], scale);
    }

    private static LoraModule lokr(SafeTensors file, String name, Component component, String path,
                                   Map<Role, String> keys, Float alpha, Shapes s) throws LoraException {
        Integer dim = null;
        int a1;
        int b1;
        if (keys.containsKey(Role.LOKR_W1)) {
            int[] w1 = s.dims(Role.LOKR_W1);
            a1 = w1[0];
            b1 = Tensors.numel(w1, 1);
        } else {
            s.require(Role.LOKR_W1_A, Role.LOKR_W1_B);
            int[] wa = s.dims(Role.LOKR_W1_A);
            int[] wb = s.dims(Role.LOKR_W1_B);
            s.checkRank("lokr_w1_a", wa, "lokr_w1_b", wb);
            dim = wb[0];
            a1 = wa[0];
            b1 = Tensors.numel(wb, 1);
        }
        int a2;
        int b2;
        if (keys.containsKey(Role.LOKR_W2)) {
            int[] w2 = s.dims(Role.LOKR_W2);
            a2 = w2[0];
            b2 = Tensors.numel(w2, 1);
        } else if (keys.containsKey(Role.LOKR_T2)) {
            s.require(Role.LOKR_W2_A, Role.LOKR_W2_B);
            int[] t = s.dims(Role.LOKR_T2);
            int[] wa = s.dims(Role.LOKR_W2_A);
            int[] wb = s.dims(Role.LOKR_W2_B);
            if (t.length < 2 || wa.length != 2 || wb.length != 2 || t[0] != wa[0] || t[1] != wb[0]) {
                throw s.error("lokr_t2 " + s.shape(Role.LOKR_T2) + " does not fit lokr_w2_a " + s.shape(Role.LOKR_W2_A)
                        + " and lokr_w2_b " + s.shape(Role.LOKR_W2_B));
            }
            dim = wb[0];
            a2 = wa[1];
            b2 = wb[1] * Tensors.numel(t, 2);
        } else {
            s.require(Role.LOKR_W2_A, Role.LOKR_W2_B);
            int[] wa = s.dims(Role.LOKR_W2_A);
            int[] wb = s.dims(Role.LOKR_W2_B);
            s.checkRank("lokr_w2_a", wa, "lokr_w2_b", wb);
            dim = wb[0];
            a2 = wa[0];
            b2 = Tensors.numel(wb, 1);
        }
        float scale = alpha != null && dim != null ? alpha / dim : 1f;
        return new LoraModule(file, name, component, path, "LyCORIS", Kind.LOKR, keys, alpha, dim == null ? 0 : dim,
                a1 * a2, b1 * b2, scale);
    }

    /** Shape checks with errors that name the file and module. */
    private record Shapes(SafeTensors file, String name, Map<Role, String> keys) {
        int[] dims(Role r) {
            return file.info(keys.get(r)).dims();
        }

        String shape(Role r) {
            return java.util.Arrays.toString(dims(r));
        }

        float scalar(Role r) throws LoraException {
            var info = file.info(keys.get(r));
            if (info.numel() != 1 || !info.dtype().isFloat()) {
                throw error("alpha must be one float, found " + info.dtype() + java.util.Arrays.toString(info.shape()));
            }
            return file.floats(info.name())[0];
        }

        void require(Role... roles) throws LoraException {
            List<String> missing = new ArrayList<>();
            for (Role r : roles) {
                if (!keys.containsKey(r)) {
                    missing.add(r.name().toLowerCase());
                }
            }
            if (!missing.isEmpty()) {
                throw error("is missing " + String.join(", ", missing));
            }
        }

        void checkRank(String aName, int[] a, String bName, int[] b) throws LoraException {
            if (a.length != 2 || b.length < 2 || a[1] != b[0]) {
                throw error("rank mismatch: " + aName + " " + java.util.Arrays.toString(a) + " and " + bName + " "
                        + java.util.Arrays.toString(b) + " do not multiply");
            }
        }

        /** [rows, cols] of one Hadamard factor (w_a @ w_b, or its Tucker form). */
        int[] lohaFactorShape(Role t, Role a, Role b, boolean tucker) throws LoraException {
            int[] wa = dims(a);
            int[] wb = dims(b);
            if (tucker) {
                int[] tt = dims(t);
                if (tt.length < 2 || wa.length != 2 || wb.length != 2 || tt[0] != wa[0] || tt[1] != wb[0]) {
                    throw error(t.name().toLowerCase() + " " + shape(t) + " does not fit " + a.name().toLowerCase() + " "
                            + shape(a) + " and " + b.name().toLowerCase() + " " + shape(b));
                }
                return new int[] {wa[1], wb[1] * Tensors.numel(tt, 2)};
            }
            checkRank(a.name().toLowerCase(), wa, b.name().toLowerCase(), wb);
            return new int[] {wa[0], Tensors.numel(wb, 1)};
        }

        LoraException error(String what) {
            return new LoraException(file.path() + ": LoRA module '" + name + "' " + what);
        }
    }
}
