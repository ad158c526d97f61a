package jdiffusion.model;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.DType;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.UpsampleConv;
import jdiffusion.tensor.WeightFormat;

/**
 * TAESD, the tiny autoencoder (madebyollin): {@code taesd}, {@code taesdxl} (4 latent channels), {@code taesd3}
 * (16). It works in the UNet's latent space (no VAE scaling factor): {@link #decode} maps model-space latents to
 * the network's [0, 1]-convention image, {@link #encode} an image in [0, 1] to model-space latents.
 *
 * <p>Layers are named by ComfyUI's {@code nn.Sequential} indices (comfy/taesd/taesd.py). Decoder: 0 Clamp
 * (tanh(x/3)*3), 1 conv latent->W, 2 ReLU, 3-5 Block, 6 Up, 7 conv (no bias), 8-10 Block, 11 Up, 12 conv, 13-15
 * Block, 16 Up, 17 conv, 18 Block, 19 conv W->3. Encoder: 0 conv 3->W, 1 Block, 2 conv stride 2 (no bias), 3-5
 * Block, 6 conv s2, 7-9 Block, 10 conv s2, 11-13 Block, 14 conv W->latent. Block(x) = relu(conv4(relu(conv2(relu(
 * conv0(x))))) + skip(x)). Files: ComfyUI's {@code models/vae_approx/taesd*_decoder|encoder.safetensors} (keys
 * {@code N.*} as above) or diffusers' {@code AutoencoderTiny} ({@code decoder.layers.N.*} = decoder index N+1, since
 * diffusers applies the clamp outside its layer list; {@code encoder.layers.N.*} = encoder index N). The width W and
 * the latent channels are read from the weights.
 */
public final class Taesd {
    /** Layer kinds by index: c conv, C conv without bias, s stride-2 conv without bias, b Block, u Up, r ReLU, t Clamp. */
    private static final String DECODER = "tcrbbbuCbbbuCbbbuCbc";
    private static final String ENCODER = "cbsbbbsbbbsbbbc";
    private static final Pattern DIFFUSERS = Pattern.compile("(encoder|decoder)\\.layers\\.(\\d+)\\.(.+)");
    private static final Pattern COMFY = Pattern.compile("(\\d+)\\.(.+)");

    private final Net decoder;
    private final Net encoder;
    private final int latentChannels;

    private Taesd(Net decoder, Net encoder) {
        this.decoder = decoder;
        this.encoder = encoder;
        this.latentChannels = decoder != null ? decoder.in : encoder.out;
        if (decoder != null && encoder != null && decoder.in != encoder.out) {
            throw new IllegalStateException("TAESD encoder makes " + encoder.out + " latent channels, the decoder reads "
                    + decoder.in);
        }
    }

    /**
     * Opens TAESD files: a diffusers AutoencoderTiny file (both halves), or ComfyUI's decoder and/or encoder files
     * (either may be null; each file's role is read from its tensors).
     */
    public static Taesd open(Path... files) throws ModelFormatException {
        List<SafeTensors> open = new ArrayList<>();
        try {
            Weights dec = null;
            Weights enc = null;
            for (Path f : files) {
                if (f == null) {
                    continue;
                }
                if (!Files.isRegularFile(f)) {
                    throw new ModelFormatException("TAESD: no such file " + f);
                }
                SafeTensors st = SafeTensors.open(f);
                open.add(st);
                Weights w = Weights.prefixed(st, "");
                Weights[] parts = split(w, f.getFileName().toString());
                if (parts[0] != null) {
                    dec = parts[0];
                }
                if (parts[1] != null) {
                    enc = parts[1];
                }
            }
            return load(dec, enc);
        } finally {
            for (SafeTensors st : open) {
                st.close();
            }
        }
    }

    /** Builds from weights already in ComfyUI's index naming ({@code N.*}); either half may be null. */
    public static Taesd load(Weights decoder, Weights encoder) throws ModelFormatException {
        if (decoder == null && encoder == null) {
            throw new ModelFormatException("TAESD: neither a decoder nor an encoder given");
        }
        try {
            return new Taesd(decoder == null ? null : Net.load(decoder, DECODER, "decoder"),
                    encoder == null ? null : Net.load(encoder, ENCODER, "encoder"));
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("TAESD: " + e.getMessage(), e);
        }
    }

    /** [decoder, encoder] views of one file in ComfyUI index naming (the rename table of both layouts). */
    private static Weights[] split(Weights w, String file) throws ModelFormatException {
        java.util.Map<String, String> dec = new java.util.LinkedHashMap<>();
        java.util.Map<String, String> enc = new java.util.LinkedHashMap<>();
        boolean comfy = false;
        for (String n : w.names()) {
            Matcher m = DIFFUSERS.matcher(n);
            if (m.matches()) {
                int i = Integer.parseInt(m.group(2));
                if (m.group(1).equals("decoder")) {
                    dec.put((i + 1) + "." + m.group(3), n);
                } else {
                    enc.put(i + "." + m.group(3), n);
                }
                continue;
            }
            if (COMFY.matcher(n).matches()) {
                comfy = true;
                continue;
            }
            throw new ModelFormatException("TAESD " + file + ": unexpected tensor '" + n + "'");
        }
        if (comfy) {
            if (!dec.isEmpty() || !enc.isEmpty()) {
                throw new ModelFormatException("TAESD " + file + ": mixes diffusers and ComfyUI tensor names");
            }
            // the decoder's first weight is index 1 (index 0 is the clamp); the encoder's is index 0
            if (w.has("1.weight") && !w.has("0.weight")) {
                return new Weights[] {w, null};
            }
            if (w.has("0.weight")) {
                return new Weights[] {null, w};
            }
            throw new ModelFormatException("TAESD " + file + ": neither a decoder (1.weight) nor an encoder (0.weight)");
        }
        return new Weights[] {dec.isEmpty() ? null : renamed(w, dec), enc.isEmpty() ? null : renamed(w, enc)};
    }

    private static Weights renamed(Weights w, java.util.Map<String, String> names) {
        return new Weights() {
            @Override
            public Set<String> names() {
                return names.keySet();
            }

            @Override
            public boolean has(String name) {
                return names.containsKey(name);
            }

            @Override
            public int[] shape(String name) {
                return w.shape(file(name));
            }

            @Override
            public float[] get(String name) {
                return w.get(file(name));
            }

            @Override
            public DType dtype(String name) {
                return w.dtype(file(name));
            }

            private String file(String name) {
                String f = names.get(name);
                if (f == null) {
                    throw new IllegalStateException("missing tensor '" + name + "'");
                }
                return f;
            }
        };
    }

    public int latentChannels() {
        return latentChannels;
    }

    public boolean canDecode() {
        return decoder != null;
    }

    public boolean canEncode() {
        return encoder != null;
    }

    /** The channel width of the network (64 in the released files). */
    public int width() {
        return (decoder != null ? decoder : encoder).width;
    }

    /**
     * Decodes model-space latents NCHW [batch][latentChannels][h][w] to the network output NCHW [batch][3][8h][8w]
     * in TAESD's [0, 1] convention, not clamped (diffusers' [-1, 1] image is this * 2 - 1).
     */
    public float[] decode(float[] latent, int batch, int h, int w) {
        if (decoder == null) {
            throw new IllegalStateException("TAESD: no decoder loaded");
        }
        return decoder.run(latent, batch, h, w);
    }

    /** Encodes an image in [0, 1], NCHW [batch][3][h][w] (h, w multiples of 8), to model-space latents NCHW. */
    public float[] encode(float[] image01, int batch, int h, int w) {
        if (encoder == null) {
            throw new IllegalStateException("TAESD: no encoder loaded");
        }
        if (h % 8 != 0 || w % 8 != 0) {
            throw new IllegalArgumentException("TAESD encode: image " + w + "x" + h + " is not a multiple of 8");
        }
        return encoder.run(image01, batch, h, w);
    }

    /** TAESD's [0, 1] convention to diffusers' [-1, 1] image (x * 2 - 1), not clamped. */
    public static float[] toSigned(float[] out01) {
        float[] y = new float[out01.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = out01[i] * 2f - 1f;
        }
        return y;
    }

    /**
     * ComfyUI's VAEDecode with a TAESD loaded by VAELoader (vae_scale 0.18215 taesd, 0.13025 taesdxl): the raw latent
     * (model space / scale + shift) is brought back to model space, decoded, and the image clamped to [0, 1], NCHW.
     */
    public float[] comfyDecode(float[] raw, int batch, int h, int w, float scale, float shift) {
        float[] z = new float[raw.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = (raw[i] - shift) * scale;
        }
        float[] x = decode(z, batch, h, w);
        for (int i = 0; i < x.length; i++) {
            float signed = (x[i] - 0.5f) * 2f;
            x[i] = Math.min(Math.max((signed + 1f) / 2f, 0f), 1f);
        }
        return x;
    }

    /** ComfyUI's VAEEncode with a TAESD: encoder(image01) / scale + shift (a raw latent), NCHW. */
    public float[] comfyEncode(float[] image01, int batch, int h, int w, float scale, float shift) {
        float[] in = new float[image01.length];
        for (int i = 0; i < in.length; i++) {
            in[i] = (image01[i] * 2f - 1f) * 0.5f + 0.5f;
        }
        float[] z = encode(in, batch, h, w);
        for (int i = 0; i < z.length; i++) {
            z[i] = z[i] / scale + shift;
        }
        return z;
    }

    /** AutoencoderTiny's uint8 packing of a latent value: round(clamp(z / (2 magnitude) + shift, 0, 1) * 255). */
    public static int packLatent(float z, float magnitude, float shift) {
        float v = Math.min(Math.max(z / (2f * magnitude) + shift, 0f), 1f);
        return (int) Math.rint(v * 255f);
    }

    /**
     * A full-size TAESD decoder (width 64 as the released files) with random weights (uniform, PyTorch's default
     * conv init bound 1/sqrt(fan_in)) and fp16 storage: what {@code bench vae --vae-decoder taesd} times.
     */
    public static Taesd randomDecoder(int latentChannels, int width, long seed) {
        java.util.Map<String, float[]> values = new java.util.LinkedHashMap<>();
        java.util.Map<String, int[]> shapes = new java.util.LinkedHashMap<>();
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed);
        int c = latentChannels;
        for (int i = 0; i < DECODER.length(); i++) {
            char k = DECODER.charAt(i);
            if (k == 'b') {
                for (int j = 0; j <= 4; j += 2) {
                    randomConv(values, shapes, i + ".conv." + j, width, width, true, rnd);
                }
            } else if (k == 'c' || k == 'C') {
                int out = i == DECODER.length() - 1 ? 3 : width;
                randomConv(values, shapes, String.valueOf(i), out, c, k == 'c', rnd);
                c = out;
            }
        }
        Weights w = new Weights() {
            @Override
            public Set<String> names() {
                return values.keySet();
            }

            @Override
            public boolean has(String name) {
                return values.containsKey(name);
            }

            @Override
            public int[] shape(String name) {
                return shapes.get(name).clone();
            }

            @Override
            public float[] get(String name) {
                return values.get(name).clone();
            }

            @Override
            public DType dtype(String name) {
                return DType.F16;
            }
        };
        try {
            return load(w, null);
        } catch (ModelFormatException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void randomConv(java.util.Map<String, float[]> values, java.util.Map<String, int[]> shapes,
                                   String p, int out, int in, boolean bias, java.util.SplittableRandom rnd) {
        double bound = 1.0 / Math.sqrt(in * 9.0);
        float[] w = new float[out * in * 9];
        for (int i = 0; i < w.length; i++) {
            w[i] = Float.float16ToFloat(Float.floatToFloat16((float) rnd.nextDouble(-bound, bound)));
        }
        values.put(p + ".weight", w);
        shapes.put(p + ".weight", new int[] {out, in, 3, 3});
        if (bias) {
            float[] b = new float[out];
            for (int i = 0; i < out; i++) {
                b[i] = Float.float16ToFloat(Float.floatToFloat16((float) rnd.nextDouble(-bound, bound)));
            }
            values.put(p + ".bias", b);
            shapes.put(p + ".bias", new int[] {out});
        }
    }

    /** The sequential network; layer objects by index (null for parameterless layers). */
    private static final class Net {
        private final String kinds;
        private final Object[] layers;
        private final int in;
        private final int out;
        private final int width;

        private Net(String kinds, Object[] layers, int in, int out, int width) {
            this.kinds = kinds;
            this.layers = layers;
            this.in = in;
            this.out = out;
            this.width = width;
        }

        static Net load(Weights w, String kinds, String what) {
            Set<String> used = new HashSet<>();
            Object[] layers = new Object[kinds.length()];
            int first = kinds.indexOf('c');
            int[] s0 = w.shape(first + ".weight");
            if (s0.length != 4) {
                throw new IllegalStateException(what + " tensor '" + first + ".weight' has shape "
                        + Arrays.toString(s0) + ", expected a conv weight");
            }
            int in = s0[1];
            int width = s0[0];
            int c = in;
            for (int i = 0; i < kinds.length(); i++) {
                char k = kinds.charAt(i);
                String p = String.valueOf(i);
                boolean upNext = i > 0 && kinds.charAt(i - 1) == 'u';
                switch (k) {
                    case 'c', 'C', 's' -> {
                        int o = i == kinds.length() - 1 ? -1 : width;
                        layers[i] = conv(w, used, p, c, o, k == 'c', k == 's' ? 2 : 1, upNext, what);
                        c = layers[i] instanceof Conv2d cv ? cv.out() : ((UpsampleConv) layers[i]).out();
                    }
                    case 'b' -> {
                        Conv2d[] b = new Conv2d[4];
                        b[0] = (Conv2d) conv(w, used, p + ".conv.0", c, width, true, 1, false, what);
                        b[1] = (Conv2d) conv(w, used, p + ".conv.2", width, width, true, 1, false, what);
                        b[2] = (Conv2d) conv(w, used, p + ".conv.4", width, width, true, 1, false, what);
                        if (w.has(p + ".skip.weight")) {
                            int[] s = w.shape(p + ".skip.weight");
                            if (!Arrays.equals(s, new int[] {width, c, 1, 1})) {
                                throw new IllegalStateException(what + " tensor '" + p + ".skip.weight' has shape "
                                        + Arrays.toString(s) + ", expected [" + width + ", " + c + ", 1, 1]");
                            }
                            used.add(p + ".skip.weight");
                            b[3] = Conv2d.of(w.get(p + ".skip.weight"), null, width, c, 1, 1, 0, format(w, p + ".skip.weight"));
                        } else if (c != width) {
                            throw new IllegalStateException(what + " block " + p + " changes " + c + " to " + width
                                    + " channels but has no skip conv");
                        }
                        layers[i] = b;
                        c = width;
                    }
                    default -> {
                    }
                }
            }
            for (String n : w.names()) {
                if (!used.contains(n)) {
                    throw new IllegalStateException(what + ": unexpected tensor '" + n + "'");
                }
            }
            return new Net(kinds, layers, in, c, width);
        }

        private static WeightFormat format(Weights w, String name) {
            return switch (w.dtype(name)) {
                case F16 -> WeightFormat.F16;
                case BF16 -> WeightFormat.BF16;
                default -> WeightFormat.F32;
            };
        }

        /** A 3x3 conv (pad 1) with in channels, out (-1: any) and bias as required; fused with a 2x upsample. */
        private static Object conv(Weights w, Set<String> used, String p, int in, int out, boolean bias, int stride,
                                   boolean upsample, String what) {
            String wn = p + ".weight";
            if (!w.has(wn)) {
                throw new IllegalStateException(what + ": missing tensor '" + wn + "'");
            }
            int[] s = w.shape(wn);
            if (s.length != 4 || s[1] != in || s[2] != 3 || s[3] != 3 || (out >= 0 && s[0] != out)) {
                throw new IllegalStateException(what + " tensor '" + wn + "' has shape " + Arrays.toString(s)
                        + ", expected [" + (out >= 0 ? out : "out") + ", " + in + ", 3, 3]");
            }
            used.add(wn);
            float[] b = null;
            if (bias) {
                String bn = p + ".bias";
                if (!w.has(bn)) {
                    throw new IllegalStateException(what + ": missing tensor '" + bn + "'");
                }
                int[] bs = w.shape(bn);
                if (bs.length != 1 || bs[0] != s[0]) {
                    throw new IllegalStateException(what + " tensor '" + bn + "' has shape " + Arrays.toString(bs)
                            + ", expected [" + s[0] + "]");
                }
                used.add(bn);
                b = w.get(bn);
            }
            float[] weight = w.get(wn);
            if (upsample) {
                return UpsampleConv.of(weight, b, s[0], in);
            }
            return Conv2d.of(weight, b, s[0], in, 3, stride, 1, format(w, wn));
        }

        float[] run(float[] nchw, int batch, int h, int w) {
            if (nchw.length != (long) batch * in * h * w) {
                throw new IllegalArgumentException("TAESD: input has " + nchw.length + " values, expected " + batch
                        + "x" + in + "x" + h + "x" + w);
            }
            float[] x = jdiffusion.tensor.Ops.nchwToNhwc(nchw, batch, in, h, w);
            Buffers buffers = new Buffers();
            int c = in;
            for (int i = 0; i < layers.length; i++) {
                switch (kinds.charAt(i)) {
                    case 't' -> {
                        for (int j = 0; j < x.length; j++) {
                            x[j] = (float) Math.tanh(x[j] / 3f) * 3f;
                        }
                    }
                    case 'r' -> relu(x);
                    case 'u' -> {
                        // fused into the next conv
                    }
                    case 'b' -> {
                        // three activation-sized arrays per size, reused block after block: the decoder's last
                        // blocks at 512x512 would otherwise allocate (and zero) 67 MB for every convolution
                        Conv2d[] b = (Conv2d[]) layers[i];
                        int n = batch * h * w * b[0].out();
                        float[] t = b[0].forwardInto(x, batch, h, w, buffers.take(n));
                        relu(t);
                        float[] u = b[1].forwardInto(t, batch, h, w, buffers.take(n));
                        relu(u);
                        b[2].forwardInto(u, batch, h, w, t);
                        jdiffusion.tensor.Ops.addReluInPlace(t, b[3] != null ? b[3].forward(x, batch, h, w) : x);
                        buffers.give(u);
                        buffers.give(x);
                        x = t;
                        c = b[2].out();
                    }
                    default -> {
                        if (layers[i] instanceof UpsampleConv u) {
                            x = u.forward(x, batch, h, w);
                            h *= 2;
                            w *= 2;
                            c = u.out();
                        } else {
                            Conv2d cv = (Conv2d) layers[i];
                            x = cv.forward(x, batch, h, w);
                            int oh = cv.outH(h);
                            w = cv.outW(w);
                            h = oh;
                            c = cv.out();
                        }
                    }
                }
            }
            Conv2d.releaseScratch();
            return jdiffusion.tensor.Ops.nhwcToNchw(x, batch, c, h, w);
        }

        /** Free activation arrays of the size in use now, for the res blocks to write into (one run, one thread). */
        private static final class Buffers {
            private final java.util.ArrayDeque<float[]> free = new java.util.ArrayDeque<>();

            /** A free array of exactly n values (contents undefined), or a new one. */
            float[] take(int n) {
                float[] a = free.poll();
                if (a == null || a.length != n) {
                    free.clear(); // another size: the image changed resolution, the old ones are not needed again
                    return new float[n];
                }
                return a;
            }

            /** Hands back an array nothing reads any more (arrays of another size are let go). */
            void give(float[] a) {
                if (!free.isEmpty() && free.peek().length != a.length) {
                    free.clear();
                }
                free.push(a);
            }
        }

        private static void relu(float[] x) {
            jdiffusion.tensor.Ops.reluInPlace(x);
        }
    }
}
