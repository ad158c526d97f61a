package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.Family;
import jdiffusion.model.LatentFormat;
import jdiffusion.model.Vae;
import jdiffusion.model.mmdit.MMDiT;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.FlowMatchEulerScheduler;
import jdiffusion.sampling.KSampler;
import jdiffusion.sampling.ModelSamplingDiscrete;
import jdiffusion.sampling.PredictionType;
import jdiffusion.sampling.SamplerInfo;
import jdiffusion.sampling.Samplers;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The image side of the SD3.5 pipeline cases, fed the text conditioning the manifests record: diffusers'
 * StableDiffusion3Pipeline loop ({@code pipe_sd35_*}: FlowMatchEuler schedule, first transformer call, latents after
 * every step, final latents, decoded image and PNG) and ComfyUI's KSampler on ModelSamplingSD3 ({@code
 * pipe_comfy_sd35_*}: sigmas, noise, first MMDiT call, x and denoised of every step, sampler and KSampler outputs,
 * image and PNG). fp16 weights as shipped and the fp32 twin.
 */
class Sd3SamplingGoldenTest {

    @TestFactory
    Stream<DynamicTest> diffusersPipelines(@TempDir Path tmp) {
        return Golden.manifestsIn("sd35", "pipe_sd35_").stream().flatMap(m -> Stream.of(
                DynamicTest.dynamicTest(Golden.caseName(m), () -> diffusers(m, model(m))),
                DynamicTest.dynamicTest(Golden.caseName(m) + " (fp32 weights)",
                        () -> diffusers(m, Golden.fp32Twin(model(m), tmp)))));
    }

    @TestFactory
    Stream<DynamicTest> comfyPipelines(@TempDir Path tmp) {
        return Golden.manifestsIn("sd35", "pipe_comfy_sd35_").stream().flatMap(m -> Stream.of(
                DynamicTest.dynamicTest(Golden.caseName(m), () -> comfy(m, model(m))),
                DynamicTest.dynamicTest(Golden.caseName(m) + " (fp32 weights)",
                        () -> comfy(m, Golden.fp32Twin(model(m), tmp)))));
    }

    /** "models/tiny-sd35-fp16.safetensors (...)" -> that file in the golden folder. */
    static Path model(Path manifest) {
        String s = Golden.json(manifest).get("params").get("model").asText();
        return Golden.dir().resolve(s.split(" ")[0]);
    }

    static Sd3Models load(SafeTensors file) throws Exception {
        return new Sd3Models(MMDiT.load(Weights.prefixed(file, "model.diffusion_model.")),
                Vae.load(Weights.prefixed(file, "first_stage_model.")), null, null);
    }

    /** Row r of a [rows, tokens, dim] context and [rows, pooled] tensor as one prompt's conditioning. */
    static TextCond row(float[] context, int[] shape, float[] pooled, int r) {
        int per = shape[1] * shape[2];
        int p = pooled.length / shape[0];
        return new TextCond(Arrays.copyOfRange(context, r * per, (r + 1) * per), shape[1], shape[2],
                Arrays.copyOfRange(pooled, r * p, (r + 1) * p));
    }

    /** A network that keeps its first output. */
    static final class Recording implements DiscreteModel.Network {
        final DiscreteModel.Network inner;
        float[] firstOut;
        float firstTimestep;

        Recording(DiscreteModel.Network inner) {
            this.inner = inner;
        }

        @Override
        public float[] apply(float[] xc, float timestep, boolean withUncond) {
            float[] out = inner.apply(xc, timestep, withUncond);
            if (firstOut == null) {
                firstOut = out.clone();
                firstTimestep = timestep;
            }
            return out;
        }
    }

    private static void diffusers(Path manifest, Path modelFile) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        JsonNode inputs = json.get("inputs");
        String name = Golden.caseName(manifest);
        try (SafeTensors file = SafeTensors.open(modelFile); SafeTensors t = Golden.tensors(manifest);
             Sd3Models m = load(file)) {
            int[] ls = Golden.shape(inputs.get("latents"));
            float[] latents = t.floats("in.latents");
            int[] cs = Golden.shape(inputs.get("call0.encoder_hidden_states"));
            float[] ctx = t.floats(inputs.get("call0.encoder_hidden_states").get("tensor").asText());
            float[] pooled = t.floats(inputs.get("call0.pooled_projections").get("tensor").asText());
            JsonNode call = params.get("call");
            double guidance = call.get("guidance_scale").asDouble();
            int height = call.get("height").asInt();
            int width = call.get("width").asInt();
            Recording net = new Recording(new UnetNetwork(m, row(ctx, cs, pooled, 1), guidance > 1
                    ? row(ctx, cs, pooled, 0) : null, ls[0], height, width));
            FlowMatchEulerScheduler.Schedule schedule = FlowMatchEulerScheduler.schedule(
                    call.get("num_inference_steps").asInt(), params.get("scheduler_config").get("shift").asDouble());
            assertFloats(name + " sigmas", params.get("sigmas"), schedule.sigmas());
            assertFloats(name + " timesteps", params.get("timesteps_used"), schedule.timesteps());
            List<float[]> steps = new ArrayList<>();
            float[] fin = FlowMatchEulerScheduler.sample(net, latents, schedule, guidance, (i, x, d) -> {
                if (i > 0) {
                    steps.add(x.clone());
                }
            });
            steps.add(fin);
            PipeGolden.check(name, json, t, "call0.out", net.firstOut);
            assertEquals(t.floats("in.call0.timestep")[0], net.firstTimestep, name + " first timestep");
            PipeGolden.check(name, json, t, "step_latents", concat(steps));
            PipeGolden.check(name, json, t, "latents_final", fin);
            LatentFormat format = Family.SD3.latentFormat();
            float[] image01 = Vae.toUnitRange(m.decode(format.toVae(fin), ls[0], ls[2], ls[3]));
            PipeGolden.check(name, json, t, "image01", image01);
            JsonNode png = params.get("png");
            PipeGolden.checkPng(name, manifest.resolveSibling(png.get("file").asText()),
                    PngImage.fromUnitFloats(image01, 0, height, width, true),
                    png.get("recommended_tolerance").asInt());
        }
    }

    private static void comfy(Path manifest, Path modelFile) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode p = json.get("params");
        JsonNode inputs = json.get("inputs");
        String name = Golden.caseName(manifest);
        try (SafeTensors file = SafeTensors.open(modelFile); SafeTensors t = Golden.tensors(manifest);
             Sd3Models m = load(file)) {
            int[] ls = Golden.shape(inputs.get("empty_latent"));
            int n = ls[0] * ls[1] * ls[2] * ls[3];
            float[] noise = KSampler.initialNoise(p.get("seed").asLong(), n);
            assertArrayEquals(t.floats("in.noise"), noise, name + ": torch.randn(seed) noise");
            TextCond cond = cond(t, json, "cond");
            TextCond uncond = cond(t, json, "uncond");
            Recording net = new Recording(new UnetNetwork(m, cond, uncond, ls[0], p.get("height").asInt(),
                    p.get("width").asInt()));
            ModelSamplingDiscrete ms = ModelSamplingDiscrete.flow(p.get("model_sampling").get("shift").asDouble());
            SamplerInfo sampler = Samplers.get(p.get("sampler_name").asText());
            double[] sigmas = KSampler.sigmas(ms, p.get("scheduler").asText(), sampler, p.get("steps").asInt(),
                    p.get("denoise").asDouble());
            float[] sig = new float[sigmas.length];
            for (int i = 0; i < sig.length; i++) {
                sig[i] = (float) sigmas[i];
            }
            assertArrayEquals(t.floats("out.sigmas"), sig, name + ": sigmas");
            List<float[]> xs = new ArrayList<>();
            List<float[]> ds = new ArrayList<>();
            JsonNode lf = p.get("latent_format");
            double scale = lf.get("scale_factor").asDouble();
            double shift = lf.get("shift_factor").asDouble();
            float[] out = KSampler.sample(new DiscreteModel(net, ms, PredictionType.FLOW), ms, sampler,
                    p.get("cfg").asDouble(), t.floats("in.empty_latent"), scale, shift, noise, sigmas,
                    sampler.noise().create(p.get("seed").asLong(), n, sigmas), (i, x, d) -> {
                        xs.add(x.clone());
                        ds.add(d.clone());
                    });
            PipeGolden.check(name, json, t, "call0.model_output", net.firstOut);
            assertEquals(t.floats("out.call0.timestep")[0], net.firstTimestep, name + " first timestep");
            PipeGolden.check(name, json, t, "step_x", concat(xs));
            PipeGolden.check(name, json, t, "step_denoised", concat(ds));
            PipeGolden.check(name, json, t, "ksampler_output", out);
            PipeGolden.check(name, json, t, "latents_final", new LatentFormat(scale, shift).toModel(out));
            float[] image01 = Vae.toUnitRange(m.decode(out, ls[0], ls[2], ls[3]));
            PipeGolden.check(name, json, t, "image01", image01);
            JsonNode png = p.get("png");
            PipeGolden.checkPng(name, manifest.resolveSibling(png.get("file").asText()),
                    PngImage.fromUnitFloats(image01, 0, p.get("height").asInt(), p.get("width").asInt(), false),
                    png.get("recommended_tolerance").asInt());
        }
    }

    private static TextCond cond(SafeTensors t, JsonNode json, String which) {
        JsonNode ctx = json.get("outputs").get(which + ".context");
        int[] s = Golden.shape(ctx);
        return new TextCond(t.floats(ctx.get("tensor").asText()), s[1], s[2],
                t.floats(json.get("outputs").get(which + ".pooled").get("tensor").asText()));
    }

    private static void assertFloats(String what, JsonNode expected, float[] actual) {
        assertEquals(expected.size(), actual.length, what + ": length");
        for (int i = 0; i < actual.length; i++) {
            double e = expected.get(i).asDouble();
            assertEquals(e, actual[i], Math.ulp((float) e), what + "[" + i + "]");
        }
    }

    private static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int o = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, out, o, a.length);
            o += a.length;
        }
        return out;
    }
}
