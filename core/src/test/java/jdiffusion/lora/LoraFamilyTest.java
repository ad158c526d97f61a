package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The family a LoRA file was made for, from real-size cross-attention widths and from structure; prefixless files. */
class LoraFamilyTest {
    @TempDir
    Path dir;

    private Family familyOf(String module, int contextWidth) throws Exception {
        var b = new TestTensors.Builder(contextWidth);
        b.random(module + ".lora_down.weight", 2, contextWidth);
        b.random(module + ".lora_up.weight", 320, 2);
        try (LoraFile f = LoraFile.open(b.write(dir.resolve(contextWidth + ".safetensors")))) {
            return f.family();
        }
    }

    @Test
    void crossAttentionContextWidthTellsTheFamilyAtRealSizes() throws Exception {
        String k = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k";
        assertEquals(Family.SD1, familyOf(k, 768));
        assertEquals(Family.SD2, familyOf(k, 1024));
        assertEquals(Family.SDXL, familyOf(k, 2048));
        assertEquals(Family.SD1_OR_SD2, familyOf("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 77));
        assertEquals(Family.SDXL, familyOf("lora_unet_input_blocks_7_1_transformer_blocks_1_attn2_to_k", 77));
        assertEquals(Family.UNKNOWN, familyOf("lora_unet_input_blocks_7_1_transformer_blocks_0_attn2_to_k", 77));
    }

    @Test
    void compatibility() {
        assertFalse(Family.SD1.compatibleWith(Family.SDXL));
        assertFalse(Family.SDXL.compatibleWith(Family.SD2));
        assertFalse(Family.SD1.compatibleWith(Family.SD2));
        assertTrue(Family.SD1_OR_SD2.compatibleWith(Family.SD2));
        assertTrue(Family.UNKNOWN.compatibleWith(Family.SDXL));
        assertFalse(Family.SD1_OR_SD2.compatibleWith(Family.SDXL));
    }

    @Test
    void prefixlessDiffusersProcessorFileIsAUnetLora() throws Exception {
        var b = new TestTensors.Builder(9);
        String m = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora";
        float[] d = b.random(m + ".down.weight", 4, 32);
        float[] u = b.random(m + ".up.weight", 32, 4);
        try (SafeTensors ckpt = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"));
             LoraFile f = LoraFile.open(b.write(dir.resolve("procs.safetensors")))) {
            ModelComponents sd1 = GoldenModels.components(ckpt);
            LoraMatch match = LoraMatch.of(f, sd1);
            assertEquals(1, match.report().modulesApplied().get(Component.UNET));
            String t = "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight";
            assertTrue(TestTensors.misfit(match.applyTo(sd1, 0.5f, 0.5f).unet().get(t), sd1.unet().get(t), 0.5,
                    TestTensors.matmul(u, d, 32, 4, 32)) <= 1);
            assertEquals(Family.SD1_OR_SD2, f.family());
        }
    }

    @Test
    void comfyUiPrefixesReachUnetAndBothTextEncoders() throws Exception {
        var b = new TestTensors.Builder(10);
        b.random("diffusion_model.input_blocks.4.1.proj_in.lora_down.weight", 2, 64);
        b.random("diffusion_model.input_blocks.4.1.proj_in.lora_up.weight", 64, 2);
        b.random("text_encoders.clip_l.transformer.text_model.encoder.layers.0.mlp.fc1.lora_down.weight", 2, 64);
        b.random("text_encoders.clip_l.transformer.text_model.encoder.layers.0.mlp.fc1.lora_up.weight", 256, 2);
        b.random("text_encoders.clip_g.transformer.text_model.encoder.layers.1.self_attn.k_proj.lora_down.weight", 2, 128);
        b.random("text_encoders.clip_g.transformer.text_model.encoder.layers.1.self_attn.k_proj.lora_up.weight", 128, 2);
        try (SafeTensors ckpt = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"));
             LoraFile f = LoraFile.open(b.write(dir.resolve("comfy.safetensors")))) {
            LoraReport r = LoraMatch.of(f, GoldenModels.components(ckpt)).report();
            assertEquals(java.util.Map.of(Component.UNET, 1, Component.TE1, 1, Component.TE2, 1), r.modulesApplied());
            assertEquals(java.util.List.of(), r.unusedKeys());
            assertEquals("ComfyUI LoRA", LoraInfo.describe(f.safetensors()).format());
        }
    }
}
