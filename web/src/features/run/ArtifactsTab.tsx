/** The run's artifacts: list, download, and a preview of text and images. */
import { useEffect, useState } from "react";
import type { RunView } from "../../api/types";
import { api } from "../../api/endpoints";
import { downloadFile, request } from "../../api/client";
import { ErrorBox } from "../../components/Feedback";

const IMAGE = /\.(png|jpe?g|gif|webp|svg)$/i;
const TEXT = /\.(txt|log|json|jsonl|csv|tsv|md|ya?ml|xml|html?|py|toml|ini)$/i;
const PREVIEW_LIMIT = 256 * 1024;

type Preview = { kind: "image"; url: string } | { kind: "text"; text: string; cut: boolean };

function ArtifactPreview({ runId, name }: { runId: string; name: string }) {
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let url: string | null = null;
    let live = true;
    request(api.artifactUrl(runId, name), { headers: { Accept: "*/*" } })
      .then(async (res) => {
        const blob = await res.blob();
        if (!live) return;
        if (IMAGE.test(name)) {
          url = URL.createObjectURL(blob);
          setPreview({ kind: "image", url });
        } else {
          const text = await blob.slice(0, PREVIEW_LIMIT).text();
          if (live) setPreview({ kind: "text", text, cut: blob.size > PREVIEW_LIMIT });
        }
      })
      .catch((e: unknown) => live && setError(e));
    return () => {
      live = false;
      if (url) URL.revokeObjectURL(url);
    };
  }, [runId, name]);
  if (error) return <ErrorBox error={error} />;
  if (!preview) return <p className="muted">Loading preview…</p>;
  if (preview.kind === "image") return <img src={preview.url} alt={name} style={{ maxWidth: "100%", maxHeight: 480 }} />;
  return (
    <pre className="argv" style={{ maxHeight: 480, overflow: "auto" }}>
      {preview.text}
      {preview.cut && "\n… (truncated; download for the rest)"}
    </pre>
  );
}

export function ArtifactsTab({ run }: { run: RunView }) {
  const [open, setOpen] = useState<string | null>(null);
  if (run.artifacts.length === 0) return <p className="muted">No artifacts.</p>;
  return (
    <section>
      <table className="data">
        <thead>
          <tr>
            <th>Name</th>
            <th>Description</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {run.artifacts.map((a) => (
            <tr key={a.name}>
              <td className="mono">{a.name}</td>
              <td>{a.description ?? ""}</td>
              <td className="row" style={{ justifyContent: "flex-end" }}>
                {(IMAGE.test(a.name) || TEXT.test(a.name)) && (
                  <button className="small" onClick={() => setOpen(open === a.name ? null : a.name)}>
                    {open === a.name ? "Hide" : "Preview"}
                  </button>
                )}
                <button className="small" onClick={() => void downloadFile(api.artifactUrl(run.run_id, a.name), a.name)}>
                  Download
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {open && (
        <div style={{ marginTop: 12 }}>
          <h2 className="mono">{open}</h2>
          <ArtifactPreview runId={run.run_id} name={open} />
        </div>
      )}
    </section>
  );
}
