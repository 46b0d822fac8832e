/**
 * Compile-time drift check between the hand-written types (types.ts) and the types generated from
 * the backend's OpenAPI document (schema.d.ts, `npm run gen:api`). After regenerating, `tsc`
 * fails here if the API dropped or renamed a field the UI reads.
 */
import type { components } from "./schema";
import type { Blocker, EventEnvelope, RunView, TaskView, WorkerView } from "./types";

type S = components["schemas"];
/** Keys the UI relies on that the generated schema lacks: must be `never`. */
type Missing<Hand, Generated> = Exclude<keyof Hand, keyof Generated>;
type Assert<T extends never> = T;

export type ContractChecks = [
  Assert<Missing<RunView, S["RunOut"]>>,
  Assert<Missing<EventEnvelope, S["EventOut"]>>,
  Assert<Missing<WorkerView, S["WorkerOut"]>>,
  Assert<Missing<Omit<TaskView, "params_schema">, S["TaskOut"]>>,
  Assert<Missing<Blocker, S["Blocker"]>>,
];
