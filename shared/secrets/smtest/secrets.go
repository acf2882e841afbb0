package smtest

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Staging labels Secrets Manager moves on its own.
const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
)

// Limits from the Secrets Manager API reference.
const (
	maxNameLen      = 512
	maxSecretIDLen  = 2048
	maxValueLen     = 65536
	minVersionIDLen = 32
	maxVersionIDLen = 64
)

type secret struct {
	arn, name, kmsKeyID, description string
	tags                             []tag
	versions                         []*version // in creation order
	created, changed                 time.Time
	deletion                         time.Time  // zero unless scheduled for deletion
	replicas                         []*replica // in the order they were added
}

type version struct {
	id      string
	str     *string
	bin     []byte
	stages  []string
	created time.Time
}

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// find returns the secret named or ARN'd by id.
func (s *Server) find(id string) (*secret, *apiError) {
	if id == "" || len(id) > maxSecretIDLen {
		return nil, errValidation(fmt.Sprintf("SecretId must be 1 to %d characters.", maxSecretIDLen))
	}
	if sec, ok := s.secrets[id]; ok {
		return sec, nil
	}
	for _, sec := range s.secrets {
		if sec.arn == id {
			return sec, nil
		}
	}
	return nil, errNotFound()
}

func (sec *secret) version(id string) *version {
	for _, v := range sec.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (sec *secret) staged(stage string) *version {
	for _, v := range sec.versions {
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

// addVersion adds a version labelled stages, moving each label off the
// version that had it; when AWSCURRENT moves, the version it leaves becomes
// AWSPREVIOUS, as PutSecretValue documents. An existing version id is
// idempotent for the same value and ResourceExistsException otherwise.
func (sec *secret) addVersion(id string, str *string, bin []byte, stages []string, now time.Time) (*version, *apiError) {
	if old := sec.version(id); old != nil {
		if ptrEqual(old.str, str) && bytes.Equal(old.bin, bin) {
			return old, nil
		}
		return nil, &apiError{http.StatusBadRequest, "ResourceExistsException", "You can't modify an existing version, you can only create a new version."}
	}
	var wasCurrent *version
	for _, stage := range stages {
		for _, v := range sec.versions {
			if i := slices.Index(v.stages, stage); i >= 0 {
				v.stages = slices.Delete(v.stages, i, i+1)
				if stage == stageCurrent {
					wasCurrent = v
				}
			}
		}
	}
	if wasCurrent != nil {
		for _, v := range sec.versions {
			v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stagePrevious })
		}
		wasCurrent.stages = append(wasCurrent.stages, stagePrevious)
	}
	v := &version{id: id, str: str, bin: bin, stages: slices.Clone(stages), created: now}
	sec.versions = append(sec.versions, v)
	sec.changed = now
	return v, nil
}

func ptrEqual(a, b *string) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// checkValue applies the rules common to CreateSecret and PutSecretValue.
func checkValue(token string, str *string, bin []byte) *apiError {
	switch {
	case str != nil && bin != nil:
		return errInvalidParameter("You can't specify both a binary secret value and a string secret value in the same secret.")
	case str != nil && len(*str) > maxValueLen, len(bin) > maxValueLen:
		return errValidation(fmt.Sprintf("1 validation error detected: Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to %d", maxValueLen))
	case token != "" && (len(token) < minVersionIDLen || len(token) > maxVersionIDLen):
		return errValidation(fmt.Sprintf("ClientRequestToken must be %d to %d characters.", minVersionIDLen, maxVersionIDLen))
	}
	return nil
}

func validName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || bytes.IndexByte([]byte("/_+=.@-"), c) >= 0) {
			return false
		}
	}
	return true
}

func (s *Server) newARN(name string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	suffix := make([]byte, 6)
	rand.Read(suffix)
	for i, b := range suffix {
		suffix[i] = alphabet[int(b)%len(alphabet)]
	}
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", Region, Account, name, suffix)
}

type createSecretInput struct {
	Name                        string
	ClientRequestToken          string
	Description                 string
	KmsKeyId                    string
	SecretString                *string
	SecretBinary                []byte
	Tags                        []tag
	AddReplicaRegions           []replicaRegion
	ForceOverwriteReplicaSecret bool
}

type createSecretOutput struct {
	ARN               string
	Name              string
	VersionId         string              `json:",omitempty"`
	ReplicationStatus []replicationStatus `json:",omitempty"`
}

func (s *Server) createSecret(in *createSecretInput) (any, *apiError) {
	if !validName(in.Name) {
		return nil, errValidation("Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	if err := checkValue(in.ClientRequestToken, in.SecretString, in.SecretBinary); err != nil {
		return nil, err
	}
	if err := checkReplicaRegions(in.AddReplicaRegions, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.secrets[in.Name]; ok {
		if !old.deletion.IsZero() {
			return nil, &apiError{http.StatusBadRequest, "InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion."}
		}
		return nil, &apiError{http.StatusBadRequest, "ResourceExistsException", fmt.Sprintf("The operation failed because the secret %s already exists.", in.Name)}
	}
	now := time.Now()
	sec := &secret{
		arn: s.newARN(in.Name), name: in.Name, kmsKeyID: in.KmsKeyId, description: in.Description,
		tags: slices.Clone(in.Tags), created: now, changed: now,
	}
	out := createSecretOutput{ARN: sec.arn, Name: sec.name}
	if in.SecretString != nil || in.SecretBinary != nil {
		id := cmp.Or(in.ClientRequestToken, newUUID())
		v, err := sec.addVersion(id, in.SecretString, in.SecretBinary, []string{stageCurrent}, now)
		if err != nil {
			return nil, err
		}
		out.VersionId = v.id
	}
	if len(in.AddReplicaRegions) > 0 {
		out.ReplicationStatus = sec.replicate(in.AddReplicaRegions)
	}
	s.secrets[sec.name] = sec
	return out, nil
}

type putSecretValueInput struct {
	SecretId           string
	ClientRequestToken string
	SecretString       *string
	SecretBinary       []byte
	VersionStages      []string
}

type versionOutput struct {
	ARN           string
	Name          string
	VersionId     string
	VersionStages []string
}

func (s *Server) putSecretValue(in *putSecretValueInput) (any, *apiError) {
	if err := checkValue(in.ClientRequestToken, in.SecretString, in.SecretBinary); err != nil {
		return nil, err
	}
	if in.SecretString == nil && in.SecretBinary == nil {
		return nil, errInvalidParameter("You must provide either SecretString or SecretBinary.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	if !sec.deletion.IsZero() {
		return nil, errMarkedForDeletion()
	}
	stages := in.VersionStages
	if len(stages) == 0 {
		stages = []string{stageCurrent}
	}
	v, err := sec.addVersion(cmp.Or(in.ClientRequestToken, newUUID()), in.SecretString, in.SecretBinary, stages, time.Now())
	if err != nil {
		return nil, err
	}
	return versionOutput{ARN: sec.arn, Name: sec.name, VersionId: v.id, VersionStages: slices.Clone(v.stages)}, nil
}

type getSecretValueInput struct {
	SecretId     string
	VersionId    string
	VersionStage string
}

type getSecretValueOutput struct {
	ARN           string
	Name          string
	VersionId     string
	SecretString  *string `json:",omitempty"`
	SecretBinary  []byte  `json:",omitempty"`
	VersionStages []string
	CreatedDate   float64
}

func (s *Server) getSecretValue(in *getSecretValueInput) (any, *apiError) {
	if in.VersionId != "" && (len(in.VersionId) < minVersionIDLen || len(in.VersionId) > maxVersionIDLen) {
		return nil, errValidation(fmt.Sprintf("VersionId must be %d to %d characters.", minVersionIDLen, maxVersionIDLen))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	if !sec.deletion.IsZero() {
		return nil, errMarkedForDeletion()
	}
	var v *version
	switch {
	case in.VersionId != "":
		v = sec.version(in.VersionId)
		if v != nil && in.VersionStage != "" && !slices.Contains(v.stages, in.VersionStage) {
			v = nil
		}
		if v == nil {
			return nil, &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: " + in.VersionId}
		}
	default:
		stage := cmp.Or(in.VersionStage, stageCurrent)
		if v = sec.staged(stage); v == nil {
			return nil, &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: " + stage}
		}
	}
	return getSecretValueOutput{
		ARN: sec.arn, Name: sec.name, VersionId: v.id, SecretString: v.str, SecretBinary: v.bin,
		VersionStages: slices.Clone(v.stages), CreatedDate: epoch(v.created),
	}, nil
}

type deleteSecretInput struct {
	SecretId                   string
	RecoveryWindowInDays       *int64
	ForceDeleteWithoutRecovery *bool
}

type deleteSecretOutput struct {
	ARN          string
	Name         string
	DeletionDate float64
}

func (s *Server) deleteSecret(in *deleteSecretInput) (any, *apiError) {
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if force && in.RecoveryWindowInDays != nil {
		return nil, errInvalidParameter("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		days = *in.RecoveryWindowInDays
	}
	if days < 7 || days > 30 {
		return nil, errInvalidParameter("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	if len(sec.replicas) > 0 { // with or without a recovery window
		return nil, errInvalidParameter(fmt.Sprintf("You can't delete secret %s that still has replica regions [%s].", sec.arn, strings.Join(sec.replicaRegions(), ", ")))
	}
	now := time.Now()
	if force { // allowed on a scheduled secret too
		delete(s.secrets, sec.name)
		return deleteSecretOutput{ARN: sec.arn, Name: sec.name, DeletionDate: epoch(now)}, nil
	}
	if !sec.deletion.IsZero() {
		return nil, errMarkedForDeletion()
	}
	sec.deletion = now.Add(time.Duration(days) * 24 * time.Hour)
	sec.changed = now
	return deleteSecretOutput{ARN: sec.arn, Name: sec.name, DeletionDate: epoch(sec.deletion)}, nil
}

type describeSecretInput struct {
	SecretId string
}

type describeSecretOutput struct {
	ARN                string
	Name               string
	Description        string `json:",omitempty"`
	KmsKeyId           string `json:",omitempty"`
	Tags               []tag  `json:",omitempty"`
	VersionIdsToStages map[string][]string
	CreatedDate        float64
	LastChangedDate    float64
	DeletedDate        float64             `json:",omitempty"` // when a scheduled deletion takes effect
	PrimaryRegion      string              `json:",omitempty"` // set once the secret has replicas
	ReplicationStatus  []replicationStatus `json:",omitempty"`
}

func (s *Server) describeSecret(in *describeSecretInput) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	out := describeSecretOutput{
		ARN: sec.arn, Name: sec.name, Description: sec.description, KmsKeyId: sec.kmsKeyID,
		Tags: slices.Clone(sec.tags), VersionIdsToStages: map[string][]string{},
		CreatedDate: epoch(sec.created), LastChangedDate: epoch(sec.changed),
	}
	for _, v := range sec.versions {
		if len(v.stages) > 0 { // versions without labels are deprecated and not listed
			out.VersionIdsToStages[v.id] = slices.Clone(v.stages)
		}
	}
	if !sec.deletion.IsZero() {
		out.DeletedDate = epoch(sec.deletion)
	}
	if len(sec.replicas) > 0 {
		out.PrimaryRegion = Region
		out.ReplicationStatus = sec.replicationStatus(nil)
	}
	return out, nil
}
