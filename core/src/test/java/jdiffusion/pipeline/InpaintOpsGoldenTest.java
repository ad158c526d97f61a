package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.Vae;
import jdiffusion.sampling.ConditionalModel;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.KSampler;
import jdiffusion.sampling.ModelSamplingDiscrete;
import jdiffusion.sampling.NoiseSource;
import jdiffusion.sampling.PredictionType;
import jdiffusion.sampling.Samplers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * ComfyUI's mask / inpaint op cases ({@code comfy_*} in the golden inpaint folder): GrowMask, ImagePadForOutpaint,
 * SetLatentNoiseMask's mask preparation, VAEEncodeForInpaint, InpaintModelConditioning (with the 9-channel model's
 * c_concat) and the KSamplerX0Inpaint blend around an analytic model. Every parameter comes from the manifest; the
 * cases that run the VAE do so on the fp16 file and on its fp32 twin.
 */
class InpaintOpsGoldenTest {
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?)\\.safetensors");
    private static Path tmp;

    @AfterAll
    static void cleanUp() throws Exception {
        if (tmp != null) {
            try (Stream<Path> s = Files.list(tmp)) {
                for (Path f : s.toList()) {
                    Files.deleteIfExists(f);
                }
            }
            Files.deleteIfExists(tmp);
        }
    }

    @TestFactory
    Stream<DynamicTest> growMask() {
        return cases("comfy_grow_mask", (m, t, dtype) -> {
            JsonNode in = m.path("inputs").path("mask");
            int[] s = Golden.shape(in);
            float[] mask = t.floats(in.path("tensor").asText());
            int checked = 0;
            for (var e : m.path("outputs").properties()) {
                String note = e.getValue().path("note").asText();
                Matcher expand = Pattern.compile("expand=(-?\\d+)").matcher(note);
                Matcher tapered = Pattern.compile("tapered_corners=(True|False)").matcher(note);
                if (!expand.find() || !tapered.find()) {
                    throw new AssertionError("output " + e.getKey() + " does not name expand / tapered_corners");
                }
                float[] ours = MaskOps.growMask(mask, s[0], s[1], s[2], Integer.parseInt(expand.group(1)),
                        tapered.group(1).equals("True"));
                check(m, t, e.getKey(), ours);
                checked++;
            }
            assertEquals(m.path("outputs").size(), checked);
        }, false);
    }

    @TestFactory
    Stream<DynamicTest> imagePadForOutpaint() {
        return cases("comfy_image_pad_for_outpaint", (m, t, dtype) -> {
            JsonNode in = m.path("inputs").path("image");
            int[] s = Golden.shape(in); // [B,H,W,C]
            float[] image = nhwcToNchw(t.floats(in.path("tensor").asText()), s[0], s[1], s[2], s[3]);
            JsonNode a = m.path("params").path("args");
            MaskOps.Padded p = MaskOps.padForOutpaint(image, s[0], s[3], s[1], s[2], a.path("left").asInt(),
                    a.path("top").asInt(), a.path("right").asInt(), a.path("bottom").asInt(),
                    a.path("feathering").asInt());
            int[] os = Golden.shape(m.path("outputs").path("image"));
            assertEquals(os[1], p.height());
            assertEquals(os[2], p.width());
            check(m, t, "image", nchwToNhwc(p.image(), s[0], s[3], p.height(), p.width()));
            check(m, t, "mask", p.mask());
        }, false);
    }

    @TestFactory
    Stream<DynamicTest> setLatentNoiseMask() {
        return cases("comfy_set_latent_noise_mask", (m, t, dtype) -> {
            int checked = 0;
            for (var e : m.path("params").path("latent_shapes").properties()) {
                String k = e.getKey();
                JsonNode in = m.path("inputs").path("mask_" + k);
                int[] ms = Golden.shape(in);
                float[] mask = t.floats(in.path("tensor").asText());
                int[] ls = ints(e.getValue());
                // the node stores the mask unchanged as [B,1,H,W]
                check(m, t, "noise_mask_" + k, mask);
                check(m, t, "denoise_mask_" + k, MaskOps.prepareDenoiseMask(mask, ms[0], ms[1], ms[2], ls[0], ls[1],
                        ls[2], ls[3]));
                checked++;
            }
            assertEquals(m.path("outputs").size(), 2 * checked);
        }, false);
    }

    @TestFactory
    Stream<DynamicTest> vaeEncodeForInpaint() {
        return cases("comfy_vae_encode_for_inpaint", (m, t, dtype) -> {
            JsonNode pin = m.path("inputs").path("pixels");
            int[] ps = Golden.shape(pin);
            float[] pixels = nhwcToNchw(t.floats(pin.path("tensor").asText()), ps[0], ps[1], ps[2], 3);
            JsonNode min = m.path("inputs").path("mask");
            int[] ms = Golden.shape(min);
            int grow = m.path("params").path("grow_mask_by").asInt();
            Inpainting.EncodeForInpaint r = Inpainting.encodeForInpaintPixels(pixels, ps[0], ps[1], ps[2],
                    t.floats(min.path("tensor").asText()), ms[0], ms[1], ms[2], grow, 8);
            check(m, t, "mask_resized", r.masked().mask());
            check(m, t, "noise_mask", r.noiseMask());
            check(m, t, "pixels_masked", nchwToNhwc(r.masked().pixels(), ps[0], 3, r.masked().height(),
                    r.masked().width()));
            if (m.path("outputs").has("latent")) {
                Vae vae = vae(m, dtype);
                float[] signed = signed(r.masked().pixels());
                check(m, t, "latent", vae.encode(signed, ps[0], r.masked().height(), r.masked().width()).mean());
            }
        }, true);
    }

    @TestFactory
    Stream<DynamicTest> inpaintModelConditioning() {
        return cases("comfy_inpaint_model_conditioning", (m, t, dtype) -> {
            JsonNode pin = m.path("inputs").path("pixels");
            int[] ps = Golden.shape(pin);
            float[] pixels = nhwcToNchw(t.floats(pin.path("tensor").asText()), ps[0], ps[1], ps[2], 3);
            JsonNode min = m.path("inputs").path("mask");
            int[] ms = Golden.shape(min);
            MaskOps.MaskedPixels mp = MaskOps.greyMasked(pixels, ps[0], ps[1], ps[2],
                    t.floats(min.path("tensor").asText()), ms[0], ms[1], ms[2], 8);
            check(m, t, "mask", mp.mask());
            check(m, t, "pixels_masked", nchwToNhwc(mp.pixels(), ps[0], 3, mp.height(), mp.width()));
            Vae vae = vae(m, dtype);
            float[] concat = vae.encode(signed(mp.pixels()), ps[0], mp.height(), mp.width()).mean();
            check(m, t, "concat_latent", concat);
            MaskOps.MaskedPixels whole = Inpainting.centreCrop(pixels, ps[0], ps[1], ps[2], vae.downscale());
            check(m, t, "orig_latent", vae.encode(signed(whole.pixels()), ps[0], whole.height(), whole.width())
                    .mean());
            int[] cs = Golden.shape(m.path("outputs").path("c_concat"));
            int lh = cs[2];
            int lw = cs[3];
            float[] cConcat = Inpainting.concatConditioning(Inpainting.concatMask(mp.mask(), ps[0], mp.height(),
                    mp.width(), cs[0], lh, lw), KSampler.processLatentIn(concat, 0.18215), cs[0], 4, lh, lw);
            check(m, t, "c_concat", cConcat);
            int[] ds = Golden.shape(m.path("outputs").path("denoise_mask"));
            check(m, t, "denoise_mask", MaskOps.prepareDenoiseMask(mp.mask(), ps[0], mp.height(), mp.width(), ds[0],
                    ds[1], ds[2], ds[3]));
        }, true);
    }

    @TestFactory
    Stream<DynamicTest> ksamplerInpaintAnalytic() {
        return cases("comfy_ksampler_inpaint", (m, t, dtype) -> {
            JsonNode p = m.path("params");
            JsonNode k = p.path("ksampler");
            JsonNode lin = m.path("inputs").path("latent");
            int[] ls = Golden.shape(lin);
            float[] latent = t.floats(lin.path("tensor").asText());
            float[] noise = t.floats(m.path("inputs").path("noise").path("tensor").asText());
            assertArrayEquals(noise, KSampler.initialNoise(k.path("seed").asLong(), latent.length),
                    "prepare_noise(seed)");
            JsonNode min = m.path("inputs").path("mask");
            int[] ms = Golden.shape(min);
            float[] denoiseMask = MaskOps.prepareDenoiseMask(t.floats(min.path("tensor").asText()), ms[0], ms[1],
                    ms[2], ls[0], ls[1], ls[2], ls[3]);
            check(m, t, "denoise_mask", denoiseMask);
            double scale = 0.18215;
            check(m, t, "latent_image_in", KSampler.processLatentIn(latent, scale));
            ModelSamplingDiscrete ms0 = ModelSamplingDiscrete.DEFAULT;
            double[] sigmas = KSampler.sigmas(ms0, k.path("scheduler").asText(), k.path("sampler_name").asText(),
                    k.path("steps").asInt(), k.path("denoise").asDouble());
            check(m, t, "sigmas", toFloats(sigmas));
            int plane = ls[2] * ls[3];
            List<float[]> xIns = new ArrayList<>();
            List<float[]> raws = new ArrayList<>();
            // eps = 0.6 tanh(xc) + 0.1 sin(t / 100) + 0.05 (c - 1.5), t the nearest integer timestep
            DiscreteModel.Network net = (xc, ts, withUncond) -> {
                float[] eps = new float[xc.length];
                for (int i = 0; i < xc.length; i++) {
                    int c = (i / plane) % ls[1];
                    eps[i] = (float) (0.6 * Math.tanh(xc[i]) + 0.1 * Math.sin(ts / 100.0) + 0.05 * (c - 1.5));
                }
                return eps;
            };
            DiscreteModel inner = new DiscreteModel(net, ms0, PredictionType.EPS);
            ConditionalModel recording = (x, sigma, u) -> {
                xIns.add(x.clone());
                ConditionalModel.Pair pr = inner.evaluate(x, sigma, u);
                raws.add(pr.cond().clone());
                return pr;
            };
            List<float[]> xs = new ArrayList<>();
            List<float[]> ds = new ArrayList<>();
            var info = Samplers.get(k.path("sampler_name").asText());
            NoiseSource noiseSource = info.noise().create(k.path("seed").asLong(), latent.length, sigmas);
            float[] out = KSampler.sample(recording, ms0, info,
                    k.path("cfg").asDouble(), latent, scale, noise, sigmas, noiseSource,
                    (i, x, d) -> {
                        xs.add(x.clone());
                        ds.add(d.clone());
                    }, denoiseMask);
            check(m, t, "call0.x_in", xIns.getFirst());
            check(m, t, "call0.denoised_raw", raws.getFirst());
            check(m, t, "step_x", concat(xs));
            check(m, t, "step_denoised", concat(ds));
            check(m, t, "ksampler_output", out);
        }, false);
    }

    // ---------------------------------------------------------------- helpers

    @FunctionalInterface
    interface Case {
        void run(JsonNode manifest, SafeTensors tensors, String dtype) throws Exception;
    }

    private static Stream<DynamicTest> cases(String prefix, Case body, boolean bothDtypes) {
        List<DynamicTest> out = new ArrayList<>();
        for (Path manifest : Golden.manifestsIn("inpaint", prefix)) {
            for (String dtype : bothDtypes ? List.of("fp16", "fp32") : List.of("fp16")) {
                String name = Golden.caseName(manifest) + (bothDtypes ? " [" + dtype + "]" : "");
                out.add(DynamicTest.dynamicTest(name, () -> {
                    JsonNode m = PipeGolden.json(manifest);
                    try (SafeTensors t = Golden.tensors(manifest)) {
                        body.run(m, t, dtype);
                    }
                }));
            }
        }
        return out.stream();
    }

    /** The VAE of the model the manifest names (first models/X.safetensors in it), fp16 as shipped or its F32 twin. */
    private static Vae vae(JsonNode m, String dtype) throws Exception {
        Matcher mm = MODEL.matcher(m.toString());
        if (!mm.find()) {
            throw new AssertionError("the manifest names no models/<file>.safetensors");
        }
        Path fp16 = Golden.model(mm.group(1).replaceAll("-fp(16|32)$", "") + "-fp16.safetensors");
        Path file = fp16;
        if (dtype.equals("fp32")) {
            synchronized (InpaintOpsGoldenTest.class) {
                if (tmp == null) {
                    tmp = Files.createTempDirectory("jdiffusion-inpaint-ops-");
                }
                file = Golden.fp32Twin(fp16, tmp);
            }
        }
        try (SafeTensors f = SafeTensors.open(file)) {
            return Vae.load(Weights.prefixed(f, "first_stage_model."));
        }
    }

    private static void check(JsonNode m, SafeTensors t, String output, float[] actual) {
        JsonNode o = m.path("outputs").path(output);
        if (o.isMissingNode()) {
            throw new AssertionError(m.path("case").asText() + ": manifest has no output " + output);
        }
        double atol = o.path("tolerance").path("atol").asDouble(0.0);
        Golden.assertClose(m.path("case").asText() + " " + output, t.floats(o.get("tensor").asText()), actual, atol);
    }

    static float[] nhwcToNchw(float[] x, int b, int h, int w, int c) {
        float[] out = new float[x.length];
        for (int n = 0; n < b; n++) {
            for (int y = 0; y < h; y++) {
                for (int xx = 0; xx < w; xx++) {
                    for (int ch = 0; ch < c; ch++) {
                        out[((n * c + ch) * h + y) * w + xx] = x[((n * h + y) * w + xx) * c + ch];
                    }
                }
            }
        }
        return out;
    }

    static float[] nchwToNhwc(float[] x, int b, int c, int h, int w) {
        float[] out = new float[x.length];
        for (int n = 0; n < b; n++) {
            for (int ch = 0; ch < c; ch++) {
                for (int y = 0; y < h; y++) {
                    for (int xx = 0; xx < w; xx++) {
                        out[((n * h + y) * w + xx) * c + ch] = x[((n * c + ch) * h + y) * w + xx];
                    }
                }
            }
        }
        return out;
    }

    private static float[] signed(float[] unit) {
        float[] out = new float[unit.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = unit[i] * 2f - 1f;
        }
        return out;
    }

    private static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).asInt();
        }
        return r;
    }

    private static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }

    private static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int at = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, out, at, a.length);
            at += a.length;
        }
        return out;
    }
}
