package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The TAESD goldens ({@code taesd_*_decode|encode}): every output of each case on four weight paths: the diffusers
 * AutoencoderTiny file as shipped (fp16) and its fp32 twin, ComfyUI's vae_approx files as shipped (fp32) and their
 * fp16 twins. Decode cases check the network output, diffusers' [-1, 1] image and ComfyUI's VAEDecode of the raw
 * latent; encode cases the model-space latent, ComfyUI's raw latent and the uint8 packing.
 */
class TaesdGoldenTest {
    @TempDir
    static Path tmp;

    @TestFactory
    Stream<DynamicTest> cases() {
        return Golden.manifestsIn("taesd", "taesd_").stream().flatMap(m -> Stream.of(
                DynamicTest.dynamicTest(Golden.caseName(m) + " diffusers fp16", () -> run(m, Variant.DIFFUSERS)),
                DynamicTest.dynamicTest(Golden.caseName(m) + " diffusers fp32", () -> run(m, Variant.DIFFUSERS_F32)),
                DynamicTest.dynamicTest(Golden.caseName(m) + " comfyui fp32", () -> run(m, Variant.COMFY)),
                DynamicTest.dynamicTest(Golden.caseName(m) + " comfyui fp16", () -> run(m, Variant.COMFY_F16))));
    }

    enum Variant { DIFFUSERS, DIFFUSERS_F32, COMFY, COMFY_F16 }

    private static Path twin(Path src, DType type) throws Exception {
        Path out = tmp.resolve(type + "-" + src.getFileName());
        if (!Files.exists(out)) {
            try (SafeTensors s = SafeTensors.open(src)) {
                SafeTensorsWriter.convert(s, out, type, false);
            }
            try (SafeTensors s = SafeTensors.open(out)) {
                for (String n : s.names()) {
                    assertEquals(type, s.info(n).dtype(), out + " " + n);
                }
            }
        }
        return out;
    }

    static Taesd load(JsonNode files, Variant v) throws Exception {
        Path diff = Golden.dir().resolve(files.get("diffusers_layout").asText());
        Path dec = Golden.dir().resolve(files.get("comfyui_decoder").asText());
        Path enc = Golden.dir().resolve(files.get("comfyui_encoder").asText());
        return switch (v) {
            case DIFFUSERS -> Taesd.open(diff);
            case DIFFUSERS_F32 -> Taesd.open(twin(diff, DType.F32));
            case COMFY -> Taesd.open(dec, enc);
            case COMFY_F16 -> Taesd.open(twin(dec, DType.F16), twin(enc, DType.F16));
        };
    }

    private static void run(Path manifest, Variant v) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        Taesd t = load(params.get("model_files"), v);
        int latentCh = params.get("diffusers_config").get("latent_channels").asInt();
        assertEquals(latentCh, t.latentChannels());
        double diffScale = params.get("diffusers_scaling_factor") != null
                ? params.get("diffusers_scaling_factor").asDouble()
                : params.get("diffusers_config").get("scaling_factor").asDouble();
        double comfyScale = params.get("comfyui").get("vae_scale").asDouble();
        double comfyShift = params.get("comfyui").get("vae_shift").asDouble();
        double magnitude = params.get("diffusers_config").get("latent_magnitude").asDouble();
        double shift = params.get("diffusers_config").get("latent_shift").asDouble();
        String name = Golden.caseName(manifest) + " " + v;
        assertTrue(!json.get("outputs").isEmpty());
        try (SafeTensors st = Golden.tensors(manifest)) {
            if (json.get("inputs").has("latents")) {
                JsonNode in = json.get("inputs").get("latents");
                int[] s = Golden.shape(in);
                float[] lat = st.floats(in.get("tensor").asText());
                for (Map.Entry<String, JsonNode> out : json.get("outputs").properties()) {
                    float[] actual;
                    switch (out.getKey()) {
                        case "decoder_out" -> actual = t.decode(lat, s[0], s[2], s[3]);
                        case "decoded" -> {
                            float[] z = lat.clone();
                            for (int i = 0; i < z.length; i++) {
                                z[i] = (float) (z[i] / diffScale);
                            }
                            actual = Taesd.toSigned(t.decode(z, s[0], s[2], s[3]));
                        }
                        case "comfy_image01" -> {
                            JsonNode rin = json.get("inputs").get("comfy_raw_latent");
                            float[] raw = st.floats(rin.get("tensor").asText());
                            actual = t.comfyDecode(raw, s[0], s[2], s[3], (float) comfyScale,
                                    (float) comfyShift);
                        }
                        default -> throw new AssertionError("unknown output " + out.getKey());
                    }
                    check(name, out, st, actual);
                }
            } else {
                JsonNode in = json.get("inputs").get("image01");
                int[] s = Golden.shape(in);
                float[] img = st.floats(in.get("tensor").asText());
                float[] lat = t.encode(img, s[0], s[2], s[3]);
                for (Map.Entry<String, JsonNode> out : json.get("outputs").properties()) {
                    switch (out.getKey()) {
                        case "latents" -> {
                            float[] z = lat.clone();
                            for (int i = 0; i < z.length; i++) {
                                z[i] = (float) (z[i] * diffScale);
                            }
                            check(name, out, st, z);
                        }
                        case "comfy_raw_latent" -> check(name, out, st,
                                t.comfyEncode(img, s[0], s[2], s[3], (float) comfyScale, (float) comfyShift));
                        case "latents_uint8" -> {
                            byte[] expected = st.segment(out.getValue().get("tensor").asText()).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                            int atol = out.getValue().get("tolerance").get("atol").asInt();
                            assertEquals(expected.length, lat.length);
                            int worst = 0;
                            for (int i = 0; i < lat.length; i++) {
                                int q = Taesd.packLatent(lat[i], (float) magnitude, (float) shift);
                                worst = Math.max(worst, Math.abs(q - (expected[i] & 0xff)));
                            }
                            System.out.printf("%s latents_uint8: max diff %d (atol %d)%n", name, worst, atol);
                            assertTrue(worst <= atol, name + " latents_uint8 differs by " + worst);
                        }
                        default -> throw new AssertionError("unknown output " + out.getKey());
                    }
                }
            }
        }
    }

    private static void check(String name, Map.Entry<String, JsonNode> out, SafeTensors st, float[] actual) {
        float[] expected = st.floats(out.getValue().get("tensor").asText());
        double atol = out.getValue().get("tolerance").get("atol").asDouble();
        System.out.printf("%s %s: max |diff| %.3g (atol %.3g)%n", name, out.getKey(),
                Golden.maxAbsDiff(expected, actual), atol);
        Golden.assertClose(name + " " + out.getKey(), expected, actual, atol);
    }

    @Test
    void refusesAForeignFile() {
        Path sd = Golden.model("tiny-esrgan-compact-x4-fp16.safetensors");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Taesd.open(sd));
        assertTrue(e.getMessage().contains("unexpected tensor"), e.getMessage());
    }

    @Test
    void refusesAWrongShape() throws Exception {
        Path dec = Golden.model("vae_approx/taesd_decoder.safetensors");
        Path bad = tmp.resolve("bad_decoder.safetensors");
        try (SafeTensors s = SafeTensors.open(dec)) {
            SafeTensorsWriter out = SafeTensorsWriter.to(bad);
            for (String n : s.names()) {
                float[] v = s.floats(n);
                int[] d = s.info(n).dims();
                if (n.equals("7.weight")) {
                    v = java.util.Arrays.copyOf(v, v.length / d[0] * (d[0] - 1));
                    d = d.clone();
                    d[0]--;
                }
                out.add(n, DType.F32, java.util.Arrays.stream(d).asLongStream().toArray(), v);
            }
            out.write();
        }
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Taesd.open(bad));
        assertTrue(e.getMessage().contains("7.weight"), e.getMessage());
    }
}
