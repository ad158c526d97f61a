package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import jdiffusion.Golden;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.model.Family;
import jdiffusion.model.ModelConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {
    @TempDir
    Path dir;

    @Test
    void sd1ComponentsUnderCanonicalNames() throws Exception {
        try (Checkpoint ckpt = Checkpoint.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            assertEquals(Family.SD1, ckpt.family());
            assertEquals(686, ckpt.unet().names().size());
            assertEquals(244, ckpt.vae().names().size());
            assertTrue(ckpt.unet().has("input_blocks.1.1.proj_in.weight"));
            assertTrue(ckpt.vae().has("decoder.up.3.upsample.conv.weight"));
            List<Weights> tes = ckpt.textEncoders();
            assertEquals(1, tes.size());
            assertArrayEquals(new int[] {49408, 64}, tes.getFirst().shape("text_model.embeddings.token_embedding.weight"));
            assertArrayEquals(ckpt.file().floats("cond_stage_model.transformer.text_model.final_layer_norm.weight"),
                    tes.getFirst().get("text_model.final_layer_norm.weight"));
            assertEquals(Map.of("format", "pt"), ckpt.metadata());
            assertTrue(ckpt.unusedTensors().isEmpty());
        }
    }

    @Test
    void sdxlTextEncodersInHfNaming() throws Exception {
        try (Checkpoint ckpt = Checkpoint.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            assertEquals(Family.SDXL, ckpt.family());
            List<Weights> tes = ckpt.textEncoders();
            assertEquals(2, tes.size());
            Weights g = tes.get(1);
            assertArrayEquals(new int[] {128, 128}, g.shape("text_model.encoder.layers.2.self_attn.v_proj.weight"));
            float[] fused = ckpt.file().floats("conditioner.embedders.1.model.transformer.resblocks.2.attn.in_proj_weight");
            float[] v = g.get("text_model.encoder.layers.2.self_attn.v_proj.weight");
            for (int i = 0; i < v.length; i++) {
                assertEquals(fused[2 * 128 * 128 + i], v[i]);
            }
            assertEquals(List.of("unet", "vae", "clip_l", "clip_g"), List.copyOf(ckpt.components().keySet()));
        }
    }

    @Test
    void diffusersUnetMapsToExactlyTheCheckpointsUnet() throws Exception {
        try (Checkpoint base = Checkpoint.open(Golden.model("tiny-sdxl-fp16.safetensors"));
             Checkpoint ckpt = base.withUnet(Golden.model("tiny-sdxl-unet-diffusers-fp16.safetensors"))) {
            Weights original = base.unet();
            Weights replaced = ckpt.unet();
            assertEquals(new TreeSet<>(original.names()), new TreeSet<>(replaced.names()));
            assertEquals(620, replaced.names().size());
            for (String n : original.names()) {
                assertArrayEquals(original.shape(n), replaced.shape(n), n);
                assertArrayEquals(original.get(n), replaced.get(n), n);
            }
            assertEquals(Golden.model("tiny-sdxl-unet-diffusers-fp16.safetensors"), ckpt.unetPath());
            assertEquals(base.config().unet(), ckpt.config().unet());
            assertSame(base.vae(), ckpt.vae());
            assertEquals(620, ckpt.unusedTensors().size(), "the checkpoint's own UNet is now unused");
        }
    }

    @Test
    void bareLdmUnetFileAndFullCheckpointAsUnet() throws Exception {
        Path bare = dir.resolve("unet.safetensors");
        try (SafeTensors src = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            SafeTensorsWriter w = SafeTensorsWriter.to(bare);
            for (String n : src.names()) {
                if (n.startsWith("model.diffusion_model.")) {
                    w.addFrom(src, n, n.substring("model.diffusion_model.".length()), DType.F32);
                }
            }
            w.write();
        }
        try (Checkpoint base = Checkpoint.open(Golden.model("tiny-sd1-fp16.safetensors"));
             Checkpoint a = base.withUnet(bare);
             Checkpoint b = base.withUnet(Golden.model("tiny-sd1-fp16.safetensors"))) {
            assertEquals(DType.F32, a.unet().info("out.2.weight").dtype());
            assertArrayEquals(base.unet().get("out.2.weight"), a.unet().get("out.2.weight"));
            assertEquals(686, b.unet().names().size());
        }
    }

    /**
     * Full-size SDXL (transformer depth 10) and SD1.5 UNets in diffusers naming, made by a second, independent
     * implementation of the golden README's table (LDM to diffusers), map back to exactly the LDM names.
     */
    @Test
    void diffusersRenameWorksAtRealSizes() throws Exception {
        for (String arch : List.of("sdxl", "sd15", "sd21")) {
            ModelConfig c = ModelConfig.preset(arch);
            Map<String, String> ldmToDiffusers = new HashMap<>();
            for (TensorSpec t : CheckpointKeys.of(c)) {
                if (t.name().startsWith("model.diffusion_model.")) {
                    String ldm = t.name().substring("model.diffusion_model.".length());
                    ldmToDiffusers.put(ldm, toDiffusers(ldm, c.unet().numResBlocks()));
                }
            }
            Map<String, String> back = CheckpointLayouts.diffusersUnetToLdm(new TreeSet<>(ldmToDiffusers.values()), arch);
            assertEquals(ldmToDiffusers.size(), back.size(), arch);
            for (Map.Entry<String, String> e : ldmToDiffusers.entrySet()) {
                assertEquals(e.getValue(), back.get(e.getKey()), arch + " " + e.getKey());
            }
        }
    }

    /** LDM -> diffusers, straight from the golden README's "Key names" table. */
    private static String toDiffusers(String ldm, int res) {
        String[] p = ldm.split("\\.");
        Map<String, String> top = Map.of("time_embed.0", "time_embedding.linear_1", "time_embed.2", "time_embedding.linear_2",
                "label_emb.0.0", "add_embedding.linear_1", "label_emb.0.2", "add_embedding.linear_2",
                "input_blocks.0.0", "conv_in", "out.0", "conv_norm_out", "out.2", "conv_out");
        for (Map.Entry<String, String> e : top.entrySet()) {
            if (ldm.startsWith(e.getKey() + ".")) {
                return e.getValue() + ldm.substring(e.getKey().length());
            }
        }
        int n = Integer.parseInt(p[1]);
        if (p[0].equals("middle_block")) {
            String inner = String.join(".", java.util.Arrays.copyOfRange(p, 2, p.length));
            String module = n == 1 ? "mid_block.attentions.0" : "mid_block.resnets." + (n / 2);
            return module + "." + (n == 1 ? inner : resnet(inner));
        }
        String rest = String.join(".", java.util.Arrays.copyOfRange(p, 3, p.length));
        int sub = Integer.parseInt(p[2]);
        if (p[0].equals("input_blocks")) {
            int level = (n - 1) / (res + 1);
            int j = (n - 1) % (res + 1);
            if (j == res) {
                return "down_blocks." + level + ".downsamplers.0.conv." + rest.substring("op.".length());
            }
            return "down_blocks." + level + (sub == 0 ? ".resnets." + j + "." + resnet(rest) : ".attentions." + j + "." + rest);
        }
        int level = n / (res + 1);
        int j = n % (res + 1);
        if (rest.startsWith("conv.")) {
            return "up_blocks." + level + ".upsamplers.0." + rest;
        }
        return "up_blocks." + level + (sub == 0 ? ".resnets." + j + "." + resnet(rest) : ".attentions." + j + "." + rest);
    }

    private static String resnet(String rest) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("in_layers.0", "norm1");
        m.put("in_layers.2", "conv1");
        m.put("emb_layers.1", "time_emb_proj");
        m.put("out_layers.0", "norm2");
        m.put("out_layers.3", "conv2");
        m.put("skip_connection", "conv_shortcut");
        for (Map.Entry<String, String> e : m.entrySet()) {
            if (rest.startsWith(e.getKey() + ".")) {
                return e.getValue() + rest.substring(e.getKey().length());
            }
        }
        throw new AssertionError("unknown res block part " + rest);
    }

    @Test
    void unetThatDoesNotFitNamesTensorAndShapes() throws Exception {
        try (Checkpoint xl = Checkpoint.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> xl.withUnet(Golden.model("tiny-sd1-fp16.safetensors")));
            String m = e.getMessage();
            assertTrue(m.startsWith(Golden.model("tiny-sd1-fp16.safetensors") + ": UNet does not fit tiny-sdxl-fp16.safetensors (SDXL): tensor '"), m);
            assertTrue(m.matches(".*tensor '[^']+' is \\[[0-9, ]+\\] but the checkpoint's is \\[[0-9, ]+\\]"), m);
        }
        try (Checkpoint sd1 = Checkpoint.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> sd1.withUnet(Golden.model("tiny-sd1-lora-kohya.safetensors")));
            assertTrue(e.getMessage().contains(": not a UNet file"), e.getMessage());
        }
    }

    @Test
    void notACheckpointListsTheMissingParts() throws Exception {
        ModelFormatException lora = assertThrows(ModelFormatException.class,
                () -> Checkpoint.open(Golden.model("tiny-sd1-lora-kohya.safetensors")));
        assertTrue(lora.getMessage().contains(": not a Stable Diffusion checkpoint, missing UNet (model.diffusion_model.*), "
                + "VAE (first_stage_model.*), text encoder ("), lora.getMessage());

        ModelFormatException unet = assertThrows(ModelFormatException.class,
                () -> Checkpoint.open(Golden.model("tiny-sdxl-unet-diffusers-fp16.safetensors")));
        assertTrue(unet.getMessage().contains("it looks like a UNet alone in diffusers layout"), unet.getMessage());

        Path noVae = dir.resolve("novae.safetensors");
        Path noClipG = dir.resolve("noclipg.safetensors");
        try (SafeTensors src = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            SafeTensorsWriter a = SafeTensorsWriter.to(noVae);
            SafeTensorsWriter b = SafeTensorsWriter.to(noClipG);
            for (String n : src.names()) {
                if (!n.startsWith("first_stage_model.")) {
                    a.addFrom(src, n, n, DType.F16);
                }
                if (!n.startsWith("conditioner.embedders.1.")) {
                    b.addFrom(src, n, n, DType.F16);
                }
            }
            a.write();
            b.write();
        }
        ModelFormatException e1 = assertThrows(ModelFormatException.class, () -> Checkpoint.open(noVae));
        assertEquals(noVae + ": not a complete SDXL checkpoint, missing VAE (first_stage_model.*) (714 tensors)", e1.getMessage());
        ModelFormatException e2 = assertThrows(ModelFormatException.class, () -> Checkpoint.open(noClipG));
        assertTrue(e2.getMessage().contains("not a complete SDXL checkpoint, missing clip_g text encoder (conditioner.embedders.1.model.*)"),
                e2.getMessage());
    }

    /** LDM VAE name -> diffusers, from the golden README's table (a second implementation, inverse direction). */
    private static String vaeToDiffusers(String ldm, int levels) {
        String[][] mid = {{"mid.block_1.", "mid_block.resnets.0."}, {"mid.block_2.", "mid_block.resnets.1."},
            {"mid.attn_1.norm.", "mid_block.attentions.0.group_norm."}, {"mid.attn_1.q.", "mid_block.attentions.0.to_q."},
            {"mid.attn_1.k.", "mid_block.attentions.0.to_k."}, {"mid.attn_1.v.", "mid_block.attentions.0.to_v."},
            {"mid.attn_1.proj_out.", "mid_block.attentions.0.to_out.0."}, {"norm_out.", "conv_norm_out."}};
        String[] p = ldm.split("\\.", 2);
        if (p[0].equals("quant_conv") || p[0].equals("post_quant_conv")) {
            return ldm;
        }
        String rest = p[1];
        for (String[] m : mid) {
            if (rest.startsWith(m[0])) {
                return p[0] + "." + m[1] + rest.substring(m[0].length());
            }
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(down|up)\\.(\\d+)\\.(block\\.(\\d+)|downsample|upsample)\\.(.+)")
                .matcher(rest);
        if (!m.matches()) {
            return ldm;
        }
        int level = Integer.parseInt(m.group(2));
        String blocks = m.group(1).equals("down") ? "down_blocks." + level : "up_blocks." + (levels - 1 - level);
        String part = m.group(4) != null ? "resnets." + m.group(4) : m.group(3).equals("downsample") ? "downsamplers.0" : "upsamplers.0";
        return p[0] + "." + blocks + "." + part + "." + m.group(5).replace("nin_shortcut", "conv_shortcut");
    }

    @Test
    void vaeFromDiffusersOrBareLdmFile() throws Exception {
        Path diffusers = dir.resolve("vae-diffusers.safetensors");
        Path bare = dir.resolve("vae-ldm.safetensors");
        try (SafeTensors src = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            SafeTensorsWriter d = SafeTensorsWriter.to(diffusers);
            SafeTensorsWriter b = SafeTensorsWriter.to(bare);
            for (String n : src.names()) {
                if (!n.startsWith("first_stage_model.")) {
                    continue;
                }
                String ldm = n.substring("first_stage_model.".length());
                TensorInfo t = src.info(n);
                long[] shape = t.shape();
                if (ldm.contains(".attn_1.") && shape.length == 4) {
                    shape = new long[] {shape[0], shape[1]}; // diffusers stores the 1x1 convs as Linear weights
                }
                d.add(vaeToDiffusers(ldm, 4), DType.F16, shape, SafeTensorsWriter.floatsOf(src, n));
                b.addFrom(src, n, ldm, DType.F32);
            }
            d.write();
            b.write();
        }
        try (Checkpoint sd1 = Checkpoint.open(Golden.model("tiny-sd1-fp16.safetensors"));
             Checkpoint xl = Checkpoint.open(Golden.model("tiny-sdxl-fp16.safetensors"));
             Checkpoint a = sd1.withVae(diffusers);
             Checkpoint b = sd1.withVae(bare)) {
            for (Checkpoint c : List.of(a, b)) {
                assertEquals(new TreeSet<>(xl.vae().names()), new TreeSet<>(c.vae().names()));
                for (String n : xl.vae().names()) {
                    assertArrayEquals(xl.vae().shape(n), c.vae().shape(n), n);
                    assertArrayEquals(xl.vae().get(n), c.vae().get(n), n);
                }
                assertSame(sd1.unet(), c.unet());
                assertEquals(244, c.unusedTensors().size(), "the checkpoint's own VAE is now unused");
                assertTrue(c.vaePath().getFileName().toString().startsWith("vae-"));
            }
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> sd1.withVae(Golden.model("tiny-sd1-lora-kohya.safetensors")));
            assertTrue(e.getMessage().contains(": not a VAE file"), e.getMessage());
        }
    }

    @Test
    void vaeThatDoesNotFitNamesTensorAndShapes() throws Exception {
        Path small = dir.resolve("small-vae.safetensors");
        ModelConfig c = TinyConfigs.sd1();
        ModelConfig other = new ModelConfig(c.family(), c.unet(),
                new ModelConfig.VaeSpec(32, List.of(1, 2, 4, 4), 2, 3, 4, 3), c.textEncoders(), c.prediction(), "", List.of());
        SafeTensorsWriter w = SafeTensorsWriter.to(small);
        for (TensorSpec t : CheckpointKeys.of(other)) {
            if (t.name().startsWith("first_stage_model.")) {
                w.add(t.name(), DType.F16, t.shape(), (start, buf, count) -> java.util.Arrays.fill(buf, 0, count, 0.5f));
            }
        }
        w.write();
        try (Checkpoint sd1 = Checkpoint.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> sd1.withVae(small));
            assertTrue(e.getMessage().startsWith(small + ": VAE does not fit tiny-sd1-fp16.safetensors (SD1): tensor '"), e.getMessage());
            assertTrue(e.getMessage().endsWith("tensor 'decoder.conv_in.bias' is [128] but the checkpoint's is [64]"), e.getMessage());
        }
    }
}
