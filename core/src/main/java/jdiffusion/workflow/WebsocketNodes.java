package jdiffusion.workflow;

import static jdiffusion.workflow.InputSpec.link;

import java.util.List;
import java.util.Map;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngWriter;
import jdiffusion.workflow.Values.Image;

/**
 * ComfyUI's {@code SaveImageWebsocket}: an output node that writes no file but hands each image of the batch, as a
 * PNG, to the listener ({@link ExecutionListener#image}); the server sends it to the prompt's client as a binary
 * websocket frame (event 1, image type 2 = PNG), which ComfyUI's websocket example scripts read.
 */
final class WebsocketNodes {
    private WebsocketNodes() {
    }

    static void register() {
        Nodes.add("SaveImageWebsocket", "SaveImageWebsocket", "api node/image/websocket", true,
                List.of(link("images", "IMAGE")), List.of(), WebsocketNodes::save);
    }

    static NodeResult save(Map<String, Object> in, NodeContext ctx) {
        Image images = (Image) in.get("images");
        for (int b = 0; b < images.batch(); b++) {
            PngImage png = PngImage.fromUnitFloats(images.pixels(), b, images.height(), images.width(), false);
            ctx.listener().image(ctx.promptId(), ctx.nodeId(), PngWriter.encode(png, Map.of()));
        }
        return NodeResult.of();
    }
}
