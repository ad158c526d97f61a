package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.List;
import jdiffusion.sampling.PredictionType;
import org.junit.jupiter.api.Test;

class PngMetadataTest {
    private static ResolvedSettings settings(String negative, String scheduler, Path init, String unet, int clipSkip) {
        return new ResolvedSettings("SD1", Names.isDiffusersSpacing(scheduler) ? ResolvedSettings.Semantics.DIFFUSERS
                : ResolvedSettings.Semantics.COMFY, "a cat, oil painting", negative, 512, 768, 20, 7.5,
                "euler_ancestral", scheduler, -1L, 2, init, init == null ? 1.0 : 0.6, PredictionType.EPS, clipSkip,
                "sd15.safetensors", unet, null, List.of(), null, List.of());
    }

    @Test
    void a1111ParametersLayout() {
        String p = PngMetadata.parameters(settings("blurry", "karras", null, null, 1), "0123456789");
        assertEquals("a cat, oil painting\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Schedule type: Karras,"
                + " CFG scale: 7.5, Seed: 18446744073709551615, Size: 512x768, Model hash: 0123456789, Model: sd15,"
                + " Batch size: 2, Version: jdiffusion", p);
    }

    @Test
    void noNegativeLineWithoutNegativePromptAndImg2ImgFields() {
        String p = PngMetadata.parameters(settings(null, "normal", Path.of("in.png"), null, 2), null);
        assertFalse(p.contains("Negative prompt"), p);
        assertFalse(p.contains("Model hash"), p);
        assertTrue(p.contains("Denoising strength: 0.6"), p);
        assertTrue(p.contains("Clip skip: 2"), p);
    }

    @Test
    void comfyWorkflowIsApiFormatWithConsistentLinks() throws Exception {
        JsonNode wf = new ObjectMapper().readTree(PngMetadata.comfyWorkflow(
                settings("blurry", "trailing", Path.of("dir/in.png"), "unet.safetensors", 2)));
        JsonNode ks = null;
        for (var it = wf.fields(); it.hasNext(); ) {
            var e = it.next();
            assertTrue(e.getValue().has("class_type"), e.getKey());
            // every link points at an existing node
            for (var in = e.getValue().get("inputs").fields(); in.hasNext(); ) {
                JsonNode v = in.next().getValue();
                if (v.isArray()) {
                    assertTrue(wf.has(v.get(0).asText()), "dangling link to " + v.get(0));
                }
            }
            if (e.getValue().get("class_type").asText().equals("KSampler")) {
                ks = e.getValue().get("inputs");
            }
        }
        assertTrue(ks != null);
        assertEquals("18446744073709551615", ks.get("seed").asText());
        assertEquals("sgm_uniform", ks.get("scheduler").asText(), "diffusers trailing is written as its nearest");
        assertEquals("euler_ancestral", ks.get("sampler_name").asText());
        assertEquals(0.6, ks.get("denoise").asDouble());
        assertEquals("UNETLoader", wf.get(ks.get("model").get(0).asText()).get("class_type").asText());
        JsonNode latent = wf.get(ks.get("latent_image").get(0).asText());
        assertEquals("VAEEncode", latent.get("class_type").asText());
        assertEquals("in.png", wf.get(latent.get("inputs").get("pixels").get(0).asText()).get("inputs").get("image")
                .asText());
        JsonNode neg = wf.get(ks.get("negative").get(0).asText());
        assertEquals("blurry", neg.get("inputs").get("text").asText());
        JsonNode clip = wf.get(neg.get("inputs").get("clip").get(0).asText());
        assertEquals("CLIPSetLastLayer", clip.get("class_type").asText());
        assertEquals(-2, clip.get("inputs").get("stop_at_clip_layer").asInt());
    }

    @Test
    void txt2imgUsesEmptyLatentWithBatch() throws Exception {
        JsonNode wf = new ObjectMapper().readTree(PngMetadata.comfyWorkflow(settings(null, "normal", null, null, 1)));
        JsonNode empty = wf.get("5");
        assertEquals("EmptyLatentImage", empty.get("class_type").asText());
        assertEquals(512, empty.get("inputs").get("width").asInt());
        assertEquals(768, empty.get("inputs").get("height").asInt());
        assertEquals(2, empty.get("inputs").get("batch_size").asInt());
        assertEquals("", wf.get("7").get("inputs").get("text").asText(), "negative encoded as empty text");
    }
}
