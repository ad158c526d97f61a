package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** /object_info in ComfyUI's shape, with ComfyUI's names, types, defaults and ranges. */
class ObjectInfoTest {
    @TempDir
    Path base;

    @Test
    void everyNodeClassDescribesItself() throws IOException {
        ModelPaths paths = ModelPaths.of(base);
        Files.writeString(base.resolve("models/checkpoints/b.safetensors"), "");
        Files.writeString(base.resolve("models/checkpoints/a.safetensors"), "");
        Files.writeString(base.resolve("models/checkpoints/notes.txt"), "");
        JsonNode info = Nodes.objectInfo(paths);
        List<String> expected = List.of("CheckpointLoaderSimple", "UNETLoader", "VAELoader", "CLIPSetLastLayer",
                "CLIPTextEncode", "EmptyLatentImage", "KSampler", "KSamplerAdvanced", "VAEDecode", "VAEDecodeTiled",
                "VAEEncode", "LoadImage", "SaveImage", "PreviewImage", "LoraLoader", "LoraLoaderModelOnly",
                "ModelSamplingDiscrete", "LatentUpscale", "ImageScale", "SaveImageWebsocket", "TripleCLIPLoader",
                "CLIPTextEncodeSD3", "EmptySD3LatentImage", "ModelSamplingSD3", "LatentUpscaleBy", "ImageScaleBy",
                "UpscaleModelLoader", "ImageUpscaleWithModel", "ControlNetLoader", "DiffControlNetLoader",
                "ControlNetApply", "ControlNetApplyAdvanced", "Canny", "LoadImageMask", "SetLatentNoiseMask",
                "VAEEncodeForInpaint", "InpaintModelConditioning", "ImagePadForOutpaint", "GrowMask", "InvertMask",
                "SolidMask", "ImageToMask", "MaskToImage", "ImageCompositeMasked");
        for (String name : expected) {
            JsonNode n = info.path(name);
            assertFalse(n.isMissingNode(), name);
            assertEquals(name, n.path("name").asText());
            for (String key : List.of("input", "output", "output_name", "display_name", "category", "output_node")) {
                assertTrue(n.has(key), name + " has " + key);
            }
        }
        assertEquals(expected.size(), info.size());

        JsonNode ckpt = info.path("CheckpointLoaderSimple");
        assertEquals("[[\"a.safetensors\",\"b.safetensors\"]]", ckpt.path("input").path("required")
                .path("ckpt_name").toString());
        assertEquals("[\"MODEL\",\"CLIP\",\"VAE\"]", ckpt.path("output").toString());
        assertEquals("Load Checkpoint", ckpt.path("display_name").asText());
        assertEquals("loaders", ckpt.path("category").asText());

        JsonNode ks = info.path("KSampler").path("input").path("required");
        assertEquals("INT", ks.path("seed").get(0).asText());
        assertEquals("18446744073709551615", ks.path("seed").get(1).path("max").asText());
        assertEquals(8.0, ks.path("cfg").get(1).path("default").asDouble());
        assertEquals(100.0, ks.path("cfg").get(1).path("max").asDouble());
        assertEquals(20, ks.path("steps").get(1).path("default").asInt());
        assertEquals(10000, ks.path("steps").get(1).path("max").asInt());
        assertEquals("MODEL", ks.path("model").get(0).asText());
        assertTrue(ks.path("sampler_name").get(0).toString().contains("\"euler\""));
        assertTrue(ks.path("scheduler").get(0).toString().contains("\"karras\""));

        JsonNode save = info.path("SaveImage");
        assertTrue(save.path("output_node").asBoolean());
        assertEquals("ComfyUI", save.path("input").path("required").path("filename_prefix").get(1)
                .path("default").asText());
        assertEquals("PROMPT", save.path("input").path("hidden").path("prompt").asText());

        JsonNode text = info.path("CLIPTextEncode").path("input").path("required").path("text");
        assertTrue(text.get(1).path("multiline").asBoolean());
        JsonNode latent = info.path("EmptyLatentImage").path("input").path("required");
        assertEquals(512, latent.path("width").get(1).path("default").asInt());
        assertEquals(16384, latent.path("width").get(1).path("max").asInt());
        assertEquals(8, latent.path("width").get(1).path("step").asInt());
        JsonNode clipSkip = info.path("CLIPSetLastLayer").path("input").path("required").path("stop_at_clip_layer");
        assertEquals(-24, clipSkip.get(1).path("min").asInt());
        assertEquals(-1, clipSkip.get(1).path("max").asInt());
    }
}
