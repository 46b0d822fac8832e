import { SubmitForm } from "../features/submit/SubmitForm";

export function SubmitPage() {
  return (
    <>
      <h1>Submit a run</h1>
      <SubmitForm />
    </>
  );
}
