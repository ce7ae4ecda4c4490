package console

import (
	"context"
	"net/http"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/provision"
	"github.com/outpost-im/outpost/appliance/settings"
)

// mustChangePassword reports whether localpart still signs in with a one-time password
// from provisioning. Such an account may use the console for nothing but setting its own.
func (c *Console) mustChangePassword(ctx context.Context, localpart string) bool {
	st, err := c.Store.Get(ctx)
	return err == nil && provision.InList(st.PasswordChangeRequired, localpart)
}

// changeOwnPassword sets the signed-in administrator's own password and lifts the
// one-time-password restriction.
func (c *Console) changeOwnPassword(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var in struct {
		Password string `json:"password"`
		Confirm  string `json:"confirm"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	if err := accounts.ValidatePassword("password", in.Password); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	if in.Confirm != in.Password {
		adminapi.WriteError(w, &accounts.FieldError{Field: "confirm", Message: "the two passwords differ; type the same password twice"})
		return
	}
	acct, err := c.People.Lookup(r.Context(), actor.UserID)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	if _, err := c.People.ResetPassword(r.Context(), actor, acct.Localpart, in.Password); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	if err := c.Store.Update(r.Context(), func(st *settings.Settings) error {
		if !provision.InList(st.PasswordChangeRequired, acct.Localpart) {
			return settings.ErrUnchanged
		}
		st.PasswordChangeRequired = provision.RemoveFromList(st.PasswordChangeRequired, acct.Localpart)
		return nil
	}); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, map[string]string{"result": "Password changed. All other devices of this account were signed out."})
}
