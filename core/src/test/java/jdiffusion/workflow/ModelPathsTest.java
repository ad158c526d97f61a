package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ComfyUI folder layout, the extra-paths file, and refusing names that lead out of their folder. */
class ModelPathsTest {
    @TempDir
    Path base;

    @TempDir
    Path elsewhere;

    @Test
    void layoutAndListing() throws IOException {
        ModelPaths p = ModelPaths.of(base);
        for (String d : List.of("input", "output", "temp", "models/checkpoints", "models/loras", "models/vae",
                "models/diffusion_models")) {
            assertTrue(Files.isDirectory(base.resolve(d)), d);
        }
        Files.createDirectories(base.resolve("models/unet"));
        Files.writeString(base.resolve("models/unet/old.safetensors"), "");
        Files.createDirectories(base.resolve("models/diffusion_models/sdxl"));
        Files.writeString(base.resolve("models/diffusion_models/sdxl/new.safetensors"), "");
        assertEquals(List.of("old.safetensors", "sdxl/new.safetensors"), p.list("diffusion_models"));
        assertEquals(base.resolve("models/diffusion_models/sdxl/new.safetensors"),
                p.resolve("diffusion_models", "sdxl/new.safetensors"));
        WorkflowException e = assertThrows(WorkflowException.class, () -> p.resolve("loras", "x.safetensors"));
        assertTrue(e.getMessage().contains("x.safetensors"), e.getMessage());
    }

    @Test
    void refusesTraversalAbsoluteAndLinksOut() throws IOException {
        ModelPaths p = ModelPaths.of(base);
        Files.writeString(elsewhere.resolve("secret.safetensors"), "");
        assertThrows(WorkflowException.class, () -> p.resolve("checkpoints", "../../secret.safetensors"));
        assertThrows(WorkflowException.class, () -> p.resolve("checkpoints", "a/../../b.safetensors"));
        assertThrows(WorkflowException.class,
                () -> p.resolve("checkpoints", elsewhere.resolve("secret.safetensors").toString()));
        assertThrows(WorkflowException.class, () -> p.resolveInput("..\\..\\secret.png"));
        // model folders may hold links to a shared model store (set up by whoever owns the folders) ...
        Files.createSymbolicLink(base.resolve("models/checkpoints/link.safetensors"),
                elsewhere.resolve("secret.safetensors"));
        Files.createSymbolicLink(base.resolve("models/checkpoints/dir"), elsewhere);
        assertEquals(base.resolve("models/checkpoints/link.safetensors"), p.resolve("checkpoints", "link.safetensors"));
        assertEquals(List.of("link.safetensors"), p.list("checkpoints"));
        // ... but input and output names never follow a link out of their folder
        Files.createDirectories(p.inputDir());
        Files.writeString(elsewhere.resolve("secret.png"), "");
        Files.createSymbolicLink(p.inputDir().resolve("leak.png"), elsewhere.resolve("secret.png"));
        WorkflowException link = assertThrows(WorkflowException.class, () -> p.resolveInput("leak.png"));
        assertTrue(link.getMessage().contains("link"), link.getMessage());
        assertEquals(List.of(), p.inputImages(), "links out are not listed either");
        Files.createDirectories(p.outputDir());
        Files.createSymbolicLink(p.outputDir().resolve("out"), elsewhere);
        assertThrows(WorkflowException.class, () -> ModelPaths.within(p.outputDir(), "out/x.png"));
        assertThrows(WorkflowException.class, () -> ModelPaths.within(p.outputDir(), "../x.png"));
        // a link that stays inside the folder is fine
        Files.writeString(base.resolve("models/checkpoints/real.safetensors"), "");
        Files.createSymbolicLink(base.resolve("models/checkpoints/alias.safetensors"),
                base.resolve("models/checkpoints/real.safetensors"));
        assertEquals(base.resolve("models/checkpoints/alias.safetensors"),
                p.resolve("checkpoints", "alias.safetensors"));
    }

    @Test
    void extraPathsYamlPointsAtAnotherInstall() throws IOException {
        Path comfy = elsewhere.resolve("ComfyUI");
        Files.createDirectories(comfy.resolve("models/checkpoints"));
        Files.createDirectories(comfy.resolve("models/unet"));
        Files.createDirectories(comfy.resolve("models/diffusion_models"));
        Files.writeString(comfy.resolve("models/checkpoints/theirs.safetensors"), "");
        Files.writeString(comfy.resolve("models/unet/u1.safetensors"), "");
        Files.writeString(comfy.resolve("models/diffusion_models/u2.safetensors"), "");
        Path yaml = elsewhere.resolve("extra_model_paths.yaml");
        Files.writeString(yaml, """
                # as ComfyUI ships it
                comfyui:
                    base_path: ComfyUI/
                    # is_default: true
                    checkpoints: models/checkpoints/
                    loras: "models/loras/"
                    diffusion_models: |
                        models/diffusion_models
                        models/unet
                """);
        ModelPaths p = ModelPaths.of(base).withExtraPaths(yaml);
        assertEquals(List.of("theirs.safetensors"), p.list("checkpoints"));
        assertEquals(List.of("u1.safetensors", "u2.safetensors"), p.list("diffusion_models"));
        assertEquals(comfy.resolve("models/checkpoints/theirs.safetensors"),
                p.resolve("checkpoints", "theirs.safetensors"));

        Path json = elsewhere.resolve("extra.json");
        Files.writeString(json, "{\"other\": {\"base_path\": \"" + comfy.toString().replace("\\", "\\\\")
                + "\", \"checkpoints\": \"models/checkpoints\"}}");
        assertEquals(List.of("theirs.safetensors"), ModelPaths.of(base).withExtraPaths(json).list("checkpoints"));

        Path bad = elsewhere.resolve("bad.yaml");
        Files.writeString(bad, "comfyui: oops\n");
        WorkflowException e = assertThrows(WorkflowException.class, () -> ModelPaths.of(base).withExtraPaths(bad));
        assertTrue(e.getMessage().contains("bad.yaml:1"), e.getMessage());
    }
}
